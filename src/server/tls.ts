// Serving certificate loading and hot reload. cert-manager renews the certificate into a Secret, and
// the kubelet swaps the mounted volume's `..data` symlink atomically: watching the directory catches
// that, and a poll catches what the watch misses (network filesystems, a watcher that died). A new pair
// is applied only once both files parse and the key matches the certificate, so a half-written pair is
// never served: the previous one stays until the next change. The CA bundle that client certificates
// must chain to (client authentication, optional) is part of the same material and reloaded with it.

import { constants as cryptoConstants, createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

import type { Logger } from 'pino';

import type { TlsReloadResult } from './metrics.ts';

/**
 * TLS 1.2 suites with forward secrecy (ECDHE) and an AEAD cipher only: no static-RSA key exchange, no
 * CBC. The TLS 1.3 suites are all AEAD with forward secrecy. Go's TLS client (the kube-apiserver)
 * offers all of these.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Everything the secure context holds. Node's setSecureContext() replaces the whole context, so a
 * certificate reload must pass the protocol settings again or it would fall back to Node's defaults.
 */
export function secureContextOptions(pair: KeyPair): SecureContextOptions {
  return {
    cert: pair.cert,
    key: pair.key,
    ...(pair.clientCa ? { ca: pair.clientCa } : {}),
    minVersion: 'TLSv1.2',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    // Renegotiation (TLS 1.2) lets a client make the server redo the costly half of a handshake at will;
    // the apiserver never renegotiates. Refused by OpenSSL here, and per socket again below.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  };
}

export interface KeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Serial of the leaf certificate, upper-case hex. */
  readonly serial: string;
  readonly notAfter: string;
  /** PEM bundle of the CAs a client certificate must chain to (client authentication on). */
  readonly clientCa?: Buffer;
  /** Subjects of those CAs, for the log. */
  readonly clientCaSubjects?: readonly string[];
  /** Hash of every file's bytes: tells whether anything changed. */
  readonly digest: string;
}

/** Reads and checks a certificate/key pair (and a client CA bundle). Throws an Error saying what is wrong. */
export async function loadKeyPair(certFile: string, keyFile: string, clientCaFile?: string): Promise<KeyPair> {
  const [cert, key, ca] = await Promise.all([readFile(certFile), readFile(keyFile), clientCaFile ? readFile(clientCaFile) : undefined]);
  return checkKeyPair(cert, key, certFile, keyFile, ca && clientCaFile ? { pem: ca, file: clientCaFile } : undefined);
}

function digestOf(cert: Buffer, key: Buffer, ca: Buffer | undefined): string {
  const h = createHash('sha256').update(cert).update('\0').update(key);
  if (ca) h.update('\0').update(ca);
  return h.digest('hex');
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * The subjects of a CA bundle. Every certificate in it must be a CA: a leaf put there by mistake would
 * make OpenSSL accept exactly that certificate as a client, which is not what a CA file promises.
 */
export function checkClientCa(pem: Buffer, file = 'client CA'): string[] {
  const blocks = pem.toString('utf8').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`${file}: no PEM certificate in it`);
  return blocks.map((b, i) => {
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(b);
    } catch (e) {
      throw new Error(`${file}: certificate #${i + 1} does not parse (${(e as Error).message})`);
    }
    if (!x509.ca) throw new Error(`${file}: ${x509.subject.replace(/\n/g, ', ')} is not a CA certificate`);
    return x509.subject.replace(/\n/g, ', ');
  });
}

export function checkKeyPair(
  cert: Buffer,
  key: Buffer,
  certFile = 'certificate',
  keyFile = 'key',
  clientCa?: { readonly pem: Buffer; readonly file: string },
): KeyPair {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`${certFile}: not a PEM certificate (${(e as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new Error(`${keyFile}: not a PEM private key (${(e as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`${keyFile} does not match the certificate in ${certFile}`);
  const clientCaSubjects = clientCa ? checkClientCa(clientCa.pem, clientCa.file) : undefined;
  try {
    // What the server will actually do with the pair: catches a truncated chain after the first certificate.
    createSecureContext({ cert, key, ...(clientCa ? { ca: clientCa.pem } : {}) });
  } catch (e) {
    throw new Error(`${certFile}/${keyFile}${clientCa ? `/${clientCa.file}` : ''}: unusable (${(e as Error).message})`);
  }
  return {
    cert,
    key,
    serial: x509.serialNumber.toUpperCase(),
    notAfter: x509.validTo,
    ...(clientCa && clientCaSubjects ? { clientCa: clientCa.pem, clientCaSubjects } : {}),
    digest: digestOf(cert, key, clientCa?.pem),
  };
}

export type ReloadOutcome = 'unchanged' | 'reloaded' | 'failed';

export interface TlsReloaderOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** The client CA bundle, read and installed together with the pair (client authentication on). */
  readonly clientCaFile?: string;
  /** The pair being served now. */
  readonly current: KeyPair;
  /** Installs a new pair (server.setSecureContext). */
  apply(pair: KeyPair): void;
  readonly logger: Logger;
  onResult?(result: TlsReloadResult): void;
  /** Quiet time after the last file event before reading the files (default 300 ms). */
  readonly debounceMs?: number;
  /** Poll interval as a fallback to file events (default 30 s; 0 disables polling). */
  readonly pollMs?: number;
}

export class TlsReloader {
  readonly #opts: TlsReloaderOptions;
  #current: KeyPair;
  /** Digest of the last pair that failed, so a broken pair is logged once, not on every poll. */
  #lastFailed: string | undefined;
  #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<ReloadOutcome> | undefined;
  #again = false;
  #stopped = true;

  constructor(opts: TlsReloaderOptions) {
    this.#opts = opts;
    this.#current = opts.current;
  }

  get current(): KeyPair {
    return this.#current;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const files = [this.#opts.certFile, this.#opts.keyFile, ...(this.#opts.clientCaFile ? [this.#opts.clientCaFile] : [])];
    const dirs = new Set(files.map((f) => dirname(f)));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on('error', (err) => {
          this.#opts.logger.warn({ dir, err: err.message }, 'tls: directory watch failed, relying on polling');
          w.close();
        });
        this.#watchers.push(w);
      } catch (e) {
        this.#opts.logger.warn({ dir, err: (e as Error).message }, 'tls: cannot watch directory, relying on polling');
      }
    }
    const pollMs = this.#opts.pollMs ?? 30_000;
    if (pollMs > 0) {
      this.#poll = setInterval(() => void this.check(), pollMs);
      this.#poll.unref();
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#poll = this.#debounce = undefined;
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.check();
    }, this.#opts.debounceMs ?? 300);
    this.#debounce.unref();
  }

  /** Reads the files now and installs them if they changed and are a valid pair. Never throws. */
  check(): Promise<ReloadOutcome> {
    if (this.#running) {
      // A change arrived during a read: read again afterwards, so the last state of the files wins.
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#checkOnce().finally(() => {
      this.#running = undefined;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        void this.check();
      }
    });
    return this.#running;
  }

  async #checkOnce(): Promise<ReloadOutcome> {
    const { certFile, keyFile, clientCaFile, logger } = this.#opts;
    let cert: Buffer;
    let key: Buffer;
    let ca: Buffer | undefined;
    try {
      [cert, key, ca] = await Promise.all([readFile(certFile), readFile(keyFile), clientCaFile ? readFile(clientCaFile) : undefined]);
    } catch (e) {
      // Mid-swap the files can be briefly missing; the next event or poll retries.
      return this.#failed(`read:${(e as Error).message}`, (e as Error).message);
    }
    const digest = digestOf(cert, key, ca);
    if (digest === this.#current.digest) return 'unchanged';
    if (digest === this.#lastFailed) return 'failed';
    let pair: KeyPair;
    try {
      pair = checkKeyPair(cert, key, certFile, keyFile, ca && clientCaFile ? { pem: ca, file: clientCaFile } : undefined);
    } catch (e) {
      return this.#failed(digest, (e as Error).message);
    }
    try {
      this.#opts.apply(pair);
    } catch (e) {
      return this.#failed(digest, `cannot install: ${(e as Error).message}`);
    }
    const previous = this.#current;
    this.#current = pair;
    this.#lastFailed = undefined;
    logger.info(
      {
        serial: pair.serial,
        notAfter: pair.notAfter,
        previousSerial: previous.serial,
        ...(pair.clientCaSubjects ? { clientCa: pair.clientCaSubjects } : {}),
      },
      'tls: serving certificate reloaded',
    );
    this.#opts.onResult?.('success');
    return 'reloaded';
  }

  #failed(id: string, message: string): ReloadOutcome {
    if (id !== this.#lastFailed) {
      this.#lastFailed = id;
      this.#opts.logger.warn({ err: message, serial: this.#current.serial }, 'tls: new certificate/key not usable, keeping the current pair');
      this.#opts.onResult?.('failure');
    }
    return 'failed';
  }
}
