// The slim copy of an object sent with a request: what buildChange (src/core/change.ts) is given as its
// `slim`. Kinds meshguard models go through the state transform; any other kind (and CONNECT options)
// keeps only its identity, labels and the annotations meshguard reads, since no rule reads more of it.

import { isRawObject as isRaw, type RawObject } from '../core/change.ts';
import type { KindName } from '../core/kinds.ts';
import type { KubeObject, ObjectMeta } from '../core/objects.ts';
import { keepAnnotation, transformRequestObject } from './transform.ts';


export function slimRequestObject(kind: KindName | undefined, raw: RawObject): KubeObject {
  return kind ? transformRequestObject(kind, raw) : minimalObject(raw);
}

/** The object of a kind meshguard does not model: identity, labels and the annotations meshguard reads. */
function minimalObject(raw: RawObject): KubeObject {
  const m = isRaw(raw.metadata) ? raw.metadata : {};
  const metadata: { -readonly [K in keyof ObjectMeta]: ObjectMeta[K] } = { name: typeof m.name === 'string' ? m.name : '' };
  if (typeof m.namespace === 'string' && m.namespace) metadata.namespace = m.namespace;
  if (typeof m.uid === 'string') metadata.uid = m.uid;
  const labels = stringsOf(m.labels);
  if (labels) metadata.labels = labels;
  const annotations = stringsOf(m.annotations, keepAnnotation);
  if (annotations) metadata.annotations = annotations;
  return { apiVersion: String(raw.apiVersion), kind: String(raw.kind), metadata };
}

function stringsOf(v: unknown, keep?: (k: string) => boolean): Record<string, string> | undefined {
  if (!isRaw(v)) return undefined;
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' || (keep && !keep(k))) continue;
    out[k] = val;
    n++;
  }
  return n > 0 ? out : undefined;
}
