// Where the e2e control plane binaries are: $KUBE_BIN_DIR, else .cache/kube/<version>/bin as written by
// scripts/prepare-control-plane.sh (version read from tools/kube/go.mod).

import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The k8s.io/kubernetes version the tools module builds (for example "v1.34.4"). */
export function kubeVersion(): string {
  const gomod = readFileSync(join(REPO_ROOT, 'tools', 'kube', 'go.mod'), 'utf8');
  const m = /^\s*(?:require\s+)?k8s\.io\/kubernetes\s+(v\d+\.\d+\.\d+)/m.exec(gomod);
  if (!m?.[1]) throw new Error('tools/kube/go.mod does not require k8s.io/kubernetes');
  return m[1];
}

export function kubeBinDir(): string {
  return process.env.KUBE_BIN_DIR || join(REPO_ROOT, '.cache', 'kube', kubeVersion(), 'bin');
}

export interface KubeBins {
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubectl: string;
}

/** The three binaries, or an error telling how to prepare them. */
export function kubeBins(): KubeBins {
  const dir = kubeBinDir();
  const bins = { etcd: join(dir, 'etcd'), kubeApiserver: join(dir, 'kube-apiserver'), kubectl: join(dir, 'kubectl') };
  const missing = Object.values(bins).filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`control plane binaries missing (${missing.join(', ')}): run scripts/prepare-control-plane.sh`);
  }
  return bins;
}

/** A kubectl for offline work (kustomize rendering): the cached one, else one on PATH, else undefined. */
export function anyKubectl(): string | undefined {
  const cached = join(kubeBinDir(), 'kubectl');
  if (existsSync(cached)) return cached;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, 'kubectl');
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}
