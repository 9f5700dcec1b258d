// Test certificates made with the openssl CLI: a throwaway CA and serving certificates it signs.
// Used by the server tests (TLS, reload) and reusable by e2e tests that need a webhook CA bundle.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface CaPaths {
  /** PEM CA certificate (give it to clients as `ca`, or to a webhook's caBundle base64-encoded). */
  readonly caCert: string;
  readonly caKey: string;
}

export interface ServingCert {
  readonly cert: string;
  readonly key: string;
  /** Serial number, upper-case hex without separators (as node's `getPeerCertificate().serialNumber`). */
  readonly serial: string;
}

export interface CertSet extends CaPaths, ServingCert {}

export interface CertOptions {
  /** Subject common name of the serving certificate (default "meshguard"). */
  readonly cn?: string;
  /** Subject alternative names: IP addresses or DNS names (default localhost and 127.0.0.1). */
  readonly sans?: readonly string[];
  /** Base file name of the serving cert/key in `dir` (default "tls" -> tls.crt / tls.key). */
  readonly name?: string;
  /** Validity in days (default 2). */
  readonly days?: number;
  /** Key algorithm (default EC P-256); RSA makes the server offer RSA key-exchange suites too. */
  readonly keyType?: 'ec' | 'rsa';
  /** What the certificate is for (default server): a client certificate authenticates its holder. */
  readonly usage?: 'server' | 'client';
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sanLine(sans: readonly string[]): string {
  return sans.map((s) => (isIP(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
}

/** Creates a CA (ca.crt/ca.key) in `dir`. */
export function makeCa(dir: string, cn = 'meshguard-test-ca'): CaPaths {
  mkdirSync(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKey]);
  openssl([
    'req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', caCert,
  ]);
  return { caCert, caKey };
}

/** Issues a serving (or, with usage client, a client) certificate signed by `ca`, written to `<dir>/<name>.crt` and `<dir>/<name>.key`. */
export function issueCert(dir: string, ca: CaPaths, opts: CertOptions = {}): ServingCert {
  mkdirSync(dir, { recursive: true });
  const name = opts.name ?? 'tls';
  const cn = opts.cn ?? 'meshguard';
  const sans = opts.sans ?? ['localhost', '127.0.0.1'];
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  if (opts.keyType === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
  else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
  const client = opts.usage === 'client';
  execFileSync('sh', ['-c', 'cat > "$1"', 'sh', ext], {
    input: [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`,
      ...(client ? [] : [`subjectAltName=${sanLine(sans)}`]),
      '',
    ].join('\n'),
  });
  openssl([
    'x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', ca.caKey, '-set_serial', randomSerial(),
    '-days', String(opts.days ?? 2), '-sha256', '-extfile', ext, '-out', cert,
  ]);
  return { cert, key, serial: certSerial(cert) };
}

/** A CA and one serving certificate for 127.0.0.1/localhost (or `sans`) in `dir`. */
export function makeCerts(dir: string, opts: CertOptions = {}): CertSet {
  const ca = makeCa(dir);
  return { ...ca, ...issueCert(dir, ca, opts) };
}

/** Serial of a PEM certificate file, upper-case hex. */
export function certSerial(certFile: string): string {
  const out = openssl(['x509', '-in', certFile, '-noout', '-serial']).trim(); // "serial=0A1B..."
  return out.replace(/^serial=/, '').toUpperCase();
}

export function readPem(file: string): string {
  return readFileSync(file, 'utf8');
}

// Distinct serials per issued cert so a test can tell which certificate a server presents.
function randomSerial(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  bytes[0] = (bytes[0]! & 0x7f) | 0x10; // positive, no leading zero byte
  return '0x' + Buffer.from(bytes).toString('hex');
}
