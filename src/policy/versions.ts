// The Cilium and Istio releases a cluster runs, as far as its state shows them, and the behaviour that
// differs between releases. The versions come from the image tags of the Cilium agent pods
// (`k8s-app: cilium`) and of istiod (Deployment or pods labelled `app: istiod` / `istio: pilot`): the
// only images the state keeps (src/state/transform.ts, carriesVersion). When the state shows no
// version, it is "unknown" and the newest supported behaviour applies. The supported matrix and the
// gates are documented in docs/semantics.md (Versions).

import type { ClusterState, Container } from '../core/objects.ts';
import { perRevision } from './memo.ts';

export interface Release {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

export interface ComponentVersion {
  /** "1.16.3", or "unknown" when the state shows none. */
  readonly version: string;
  readonly release?: Release;
  /** Where it was read ("pod kube-system/cilium-x container cilium-agent"), absent when unknown. */
  readonly source?: string;
  /** Other releases seen at the same time (an upgrade in progress); the oldest one is `version`. */
  readonly others?: readonly string[];
}

export interface ClusterVersions {
  readonly cilium: ComponentVersion;
  readonly istio: ComponentVersion;
}

/** The releases whose behaviour meshguard models (docs/semantics.md, Versions). */
export const SUPPORTED = {
  cilium: { oldest: '1.14', newest: '1.20' },
  istio: { oldest: '1.22', newest: '1.28' },
} as const;

const UNKNOWN: ComponentVersion = Object.freeze({ version: 'unknown' });

/** The release an image reference is tagged with: `quay.io/cilium/cilium:v1.16.3@sha256:...` -> 1.16.3. */
export function releaseOfImage(image: string): Release | undefined {
  const noDigest = image.split('@')[0]!;
  const colon = noDigest.lastIndexOf(':');
  if (colon < 0 || colon < noDigest.lastIndexOf('/')) return undefined;
  const m = /^v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,6}))?(?:[-+._].*)?$/.exec(noDigest.slice(colon + 1));
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export function compareReleases(a: Release, b: Release): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

function format(r: Release): string {
  return `${r.major}.${r.minor}.${r.patch}`;
}

/** Is the release at least major.minor? Unknown releases count as the newest (true). */
export function atLeast(v: ComponentVersion, major: number, minor: number): boolean {
  if (!v.release) return true;
  return compareReleases(v.release, { major, minor, patch: 0 }) >= 0;
}

interface Seen {
  release: Release;
  source: string;
}

function pick(seen: readonly Seen[]): ComponentVersion {
  if (seen.length === 0) return UNKNOWN;
  const sorted = [...seen].sort((a, b) => compareReleases(a.release, b.release));
  const oldest = sorted[0]!;
  const others = [...new Set(sorted.map((s) => format(s.release)))].filter((v) => v !== format(oldest.release));
  return Object.freeze({
    version: format(oldest.release),
    release: oldest.release,
    source: oldest.source,
    ...(others.length > 0 ? { others } : {}),
  });
}

function fromContainers(out: Seen[], containers: readonly Container[], where: string, wanted: (c: Container) => boolean): void {
  for (const c of containers) {
    if (!c.image || !wanted(c)) continue;
    const release = releaseOfImage(c.image);
    if (release) out.push({ release, source: `${where} container ${c.name} (${c.image})` });
  }
}

/** The agent container of a Cilium pod: named cilium-agent, else an image named cilium. */
const isCiliumAgent = (c: Container): boolean => c.name === 'cilium-agent' || /\/cilium(?:-[a-z]+)?:/.test(c.image ?? '') && !/operator|envoy/.test(c.image ?? '');
/** The istiod container: named discovery, else a pilot image. */
const isIstiod = (c: Container): boolean => c.name === 'discovery' || /\/pilot:/.test(c.image ?? '');

/** The Cilium and Istio versions the state shows (cached per state revision). */
export function clusterVersions(state: ClusterState): ClusterVersions {
  return perRevision(state, 'clusterVersions', () => {
    const cilium: Seen[] = [];
    for (const p of state.podsWithLabel(undefined, 'k8s-app', 'cilium')) {
      fromContainers(cilium, p.spec.containers, `pod ${p.metadata.namespace ?? ''}/${p.metadata.name}`, isCiliumAgent);
    }
    const istio: Seen[] = [];
    for (const d of state.list('Deployment')) {
      const labels = d.spec.template?.metadata?.labels ?? d.metadata.labels;
      if (labels?.app !== 'istiod' && labels?.istio !== 'pilot') continue;
      fromContainers(istio, d.spec.template?.spec?.containers ?? [], `Deployment ${d.metadata.namespace ?? ''}/${d.metadata.name}`, isIstiod);
    }
    if (istio.length === 0) {
      for (const key of ['app', 'istio'] as const) {
        for (const p of state.podsWithLabel(undefined, key, key === 'app' ? 'istiod' : 'pilot')) {
          fromContainers(istio, p.spec.containers, `pod ${p.metadata.namespace ?? ''}/${p.metadata.name}`, isIstiod);
        }
      }
    }
    return Object.freeze({ cilium: pick(cilium), istio: pick(istio) });
  });
}

/**
 * Whether a known release lies outside the supported range (its behaviour may differ from what the
 * gates model); false when unknown.
 */
export function unsupported(v: ComponentVersion, range: { readonly oldest: string; readonly newest: string }): boolean {
  if (!v.release) return false;
  const [oMaj, oMin] = range.oldest.split('.').map(Number) as [number, number];
  const [nMaj, nMin] = range.newest.split('.').map(Number) as [number, number];
  const r = v.release;
  return compareReleases(r, { major: oMaj, minor: oMin, patch: 0 }) < 0 || r.major > nMaj || (r.major === nMaj && r.minor > nMin);
}

/** One line for people: "Cilium 1.16.3, Istio unknown". */
export function formatVersions(v: ClusterVersions): string {
  const one = (name: string, c: ComponentVersion): string => `${name} ${c.version}${c.others ? ` (also ${c.others.join(', ')})` : ''}`;
  return `${one('Cilium', v.cilium)}, ${one('Istio', v.istio)}`;
}
