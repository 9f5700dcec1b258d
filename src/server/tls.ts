// Serving certificate loading and hot reload. cert-manager renews the certificate into a Secret, and
// the kubelet swaps the mounted volume's `..data` symlink atomically: watching the directory catches
// that, and a poll catches what the watch misses (network filesystems, a watcher that died). A new pair
// is applied only once both files parse and the key matches the certificate, so a half-written pair is
// never served: the previous one stays until the next change.

import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';

import type { Logger } from 'pino';

import type { TlsReloadResult } from './metrics.ts';

export interface KeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Serial of the leaf certificate, upper-case hex. */
  readonly serial: string;
  readonly notAfter: string;
  /** Hash of both files' bytes: tells whether anything changed. */
  readonly digest: string;
}

/** Reads and checks a certificate/key pair. Throws an Error whose message says what is wrong. */
export async function loadKeyPair(certFile: string, keyFile: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  return checkKeyPair(cert, key, certFile, keyFile);
}

export function checkKeyPair(cert: Buffer, key: Buffer, certFile = 'certificate', keyFile = 'key'): KeyPair {
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
  try {
    // What the server will actually do with the pair: catches a truncated chain after the first certificate.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`${certFile}/${keyFile}: unusable pair (${(e as Error).message})`);
  }
  const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { cert, key, serial: x509.serialNumber.toUpperCase(), notAfter: x509.validTo, digest };
}

export type ReloadOutcome = 'unchanged' | 'reloaded' | 'failed';

export interface TlsReloaderOptions {
  readonly certFile: string;
  readonly keyFile: string;
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
    const dirs = new Set([dirname(this.#opts.certFile), dirname(this.#opts.keyFile)]);
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
    const { certFile, keyFile, logger } = this.#opts;
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
    } catch (e) {
      // Mid-swap the files can be briefly missing; the next event or poll retries.
      return this.#failed(`read:${(e as Error).message}`, (e as Error).message);
    }
    const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
    if (digest === this.#current.digest) return 'unchanged';
    if (digest === this.#lastFailed) return 'failed';
    let pair: KeyPair;
    try {
      pair = checkKeyPair(cert, key, certFile, keyFile);
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
    logger.info({ serial: pair.serial, notAfter: pair.notAfter, previousSerial: previous.serial }, 'tls: serving certificate reloaded');
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
