/**
 * Ports for the servers the tests and the benchmark start.
 *
 * Asking the kernel for port 0 hands out a port from the ephemeral range, the same range outgoing
 * connections draw from. Between closing the probe socket and the real server binding it, a client
 * connection (kubectl, an informer's watch, etcd's own clients) can take that port, and the server then
 * fails with "address already in use". CI saw exactly that with etcd. Ports are therefore chosen at
 * random below the ephemeral range, where the kernel never assigns outgoing connections, and checked
 * with a bind before they are handed out. Servers should still retry on EADDRINUSE: another test
 * process can pick the same port in the same window, however unlikely.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const FALLBACK_EPHEMERAL_LOW = 32768;
/** How far below the ephemeral range to pick from; wide enough that parallel test files rarely meet. */
const SPAN = 12_000;
const LOWEST = 10_000;
const ATTEMPTS = 50;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && Number.isInteger(low) && low > LOWEST + 1000) return low;
  } catch {
    /* not Linux, or /proc not mounted: assume the kernel default */
  }
  return FALLBACK_EPHEMERAL_LOW;
}

/** The range candidates are drawn from: [from, to). Exported for the tests. */
export function candidateRange(): { from: number; to: number } {
  const to = ephemeralLow();
  return { from: Math.max(LOWEST, to - SPAN), to };
}

/** Resolves true when `port` can be bound on 127.0.0.1 right now (the socket is closed again). */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A TCP port on 127.0.0.1 that is free now and outside the range outgoing connections use. */
export async function freePort(): Promise<number> {
  const { from, to } = candidateRange();
  for (let i = 0; i < ATTEMPTS; i++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (await canBind(port)) return port;
  }
  // A crowded machine: fall back to the kernel's choice rather than fail the run.
  return kernelPort();
}

/** True when a server's output says its port was taken (Go's and Node's wording). */
export function portTaken(output: string): boolean {
  return /address already in use|EADDRINUSE/i.test(output);
}
