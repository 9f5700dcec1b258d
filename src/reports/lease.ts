// One writer of policy reports among the replicas: a coordination.k8s.io/v1 Lease, held the way
// client-go's leader election holds one. The holder renews it every `renewMs`; another replica takes
// it over only once `leaseMs` has passed since the last renewal; every write carries the
// resourceVersion read, so two replicas racing for it cannot both win (the loser gets 409). All
// replicas stay ready: the Lease decides who writes reports, not who answers reviews.

import type { Clock } from '../budget.ts';
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

  constructor(o: LeaseOptions) {
    this.#o = { leaseMs: 30_000, ...o, clock: o.clock ?? wallClock };
  }

  get held(): boolean {
    return this.#held;
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
    try {
      this.#held = await this.#attempt();
    } catch {
      this.#held = false;
    }
    return this.#held;
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
    const renewed = current.spec.renewTime ? Date.parse(current.spec.renewTime) : 0;
    const duration = (current.spec.leaseDurationSeconds ?? seconds) * 1000;
    const mine = holder === this.#o.identity;
    if (!mine && holder !== '' && renewed + duration > now) return false;
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
