// One writer of policy reports among the replicas: a coordination.k8s.io/v1 Lease, held the way
// client-go's leader election holds one. The holder renews it every `renewMs`; another replica takes
// it over only once the lease has not changed for `leaseMs` *as that replica observed it* (its own
// monotonic clock, never the holder's wall-clock timestamps: nodes' clocks may disagree); every
// write carries the resourceVersion read, so two replicas racing for it cannot both win (the loser
// gets 409). A holder whose renewals stall counts itself as holding only until `leaseMs` after its
// last successful renewal, before anyone else can take over. All replicas stay ready: the Lease
// decides who writes reports, not who answers reviews.

import type { Clock } from '../core/budget.ts';
import type { KubeApi } from '../state/kube-api.ts';
import { readBody } from '../state/kube-api.ts';

export interface LeaseOptions {
  readonly api: KubeApi;
  readonly namespace: string;
  readonly name: string;
  /** This replica (the pod name). */
  readonly identity: string;
  /** How long a lease stays valid after its last renewal (default 30 s). */
  readonly leaseMs?: number;
  readonly clock?: Clock & { wall(): number };
}

interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const wallClock = { now: () => performance.now(), wall: () => Date.now() };

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class Lease {
  readonly #o: Required<Omit<LeaseOptions, 'clock'>> & { clock: Clock & { wall(): number } };
  #held = false;
  /** Monotonic time of this replica's last successful create or renewal. */
  #renewedAt = 0;
  /** The lease record as last observed: its resourceVersion and when this replica first saw it. */
  #observed: { rv: string; at: number } | undefined;

  constructor(o: LeaseOptions) {
    this.#o = { leaseMs: 30_000, ...o, clock: o.clock ?? wallClock };
  }

  /** Held, and renewed within the lease duration (a stalled renewal stops counting before expiry). */
  get held(): boolean {
    return this.#held && this.#o.clock.now() - this.#renewedAt < this.#o.leaseMs;
  }

  #path(name?: string): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/leases`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  async #read(): Promise<LeaseObject | undefined> {
    const res = await this.#o.api.get(this.#path(this.#o.name));
    const text = await readBody(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw new Error(`reading lease ${this.#o.namespace}/${this.#o.name}: HTTP ${res.statusCode}`);
    return JSON.parse(text) as LeaseObject;
  }

  /**
   * Takes the lease if it is free or expired, renews it if held. Resolves to whether this replica
   * holds it now. An error of the API server counts as not holding it.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const started = this.#o.clock.now();
    try {
      this.#held = await this.#attempt();
    } catch {
      this.#held = false;
    }
    // Counted from before the request: the API server may have written it any time since.
    if (this.#held) this.#renewedAt = started;
    return this.held;
  }

  async #attempt(): Promise<boolean> {
    const now = this.#o.clock.wall();
    const seconds = Math.ceil(this.#o.leaseMs / 1000);
    const current = await this.#read();
    if (!current) {
      const res = await this.#o.api.send('POST', this.#path(), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.#o.name, namespace: this.#o.namespace },
        spec: { holderIdentity: this.#o.identity, leaseDurationSeconds: seconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      });
      return res.status === 201;
    }
    const holder = current.spec.holderIdentity ?? '';
    const duration = (current.spec.leaseDurationSeconds ?? seconds) * 1000;
    const mine = holder === this.#o.identity;
    const rv = current.metadata.resourceVersion ?? '';
    const seenAt = this.#o.clock.now();
    if (this.#observed?.rv !== rv) this.#observed = { rv, at: seenAt };
    if (!mine && holder !== '' && seenAt - this.#observed.at < duration) return false;
    const spec = {
      ...current.spec,
      holderIdentity: this.#o.identity,
      leaseDurationSeconds: seconds,
      renewTime: microTime(now),
      ...(mine ? {} : { acquireTime: microTime(now), leaseTransitions: (current.spec.leaseTransitions ?? 0) + 1 }),
    };
    const res = await this.#o.api.send('PUT', this.#path(this.#o.name), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: current.metadata, spec });
    return res.status === 200;
  }

  /** Gives the lease up (on shutdown), so another replica takes over without waiting for it to expire. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    try {
      const current = await this.#read();
      if (!current || current.spec.holderIdentity !== this.#o.identity) return;
      await this.#o.api.send('PUT', this.#path(this.#o.name), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: current.metadata,
        spec: { ...current.spec, holderIdentity: '', renewTime: microTime(0) },
      });
    } catch {
      // Best effort: the lease expires on its own.
    }
  }
}
