// Read Kubernetes manifests from files and directories: multi-document YAML, JSON, and Lists (`kind: List`
// or `PodList` etc., what `kubectl get -o yaml` prints) flattened into their items. Every object keeps
// the file and 1-based line it came from, so errors and findings can point at it. Composes the files
// (./files.ts, bounded reads in ./input.ts), the JSON scanners (./json.ts) and the YAML reader (./yaml.ts).

import { InputError } from '../../core/errors.ts';
import { expand, sizeOf } from './files.ts';
import { checkYamlSize, DEFAULT_INPUT_LIMITS, formatBytes, peekFile, readBoundedText, startsLikeJson, STDIN, yamlNarrow, type InputLimits } from './input.ts';
import { chunkedJsonList, drain, jsonListChunkedDocs, jsonListDocs, jsonStart, PAUSE, readJson, type DocOrPause } from './json.ts';
import type { ManifestDoc } from './objects.ts';
import { parseYaml } from './yaml.ts';

export type { ManifestDoc } from './objects.ts';
export { PAUSE, type DocOrPause } from './json.ts';

const STDIN_NAME = '<stdin>';

/** A .yaml file's text: JSON when it holds JSON (much faster to parse), else YAML. */
function readYaml(file: string, text: string, out: ManifestDoc[], limits: InputLimits): void {
  const js = jsonStart(text);
  if (js >= 0) {
    const n = out.length;
    try {
      readJson(file, text, out, js);
      return;
    } catch (e) {
      // Not JSON after all (YAML flow style): the YAML parser decides, and reports errors its way.
      if (!(e instanceof InputError) || !e.message.includes('invalid JSON')) throw e;
      out.length = n;
    }
  }
  parseYaml(file, text, out, limits);
}

/**
 * Every object in `paths` (files, directories, or "-" for standard input, named "<stdin>"), in order,
 * Lists flattened. Empty documents are skipped. Throws InputError naming the file and line for an
 * unreadable file, invalid YAML/JSON, or a document that is not an object with apiVersion, kind and
 * metadata.name.
 */
export function readManifests(paths: readonly string[], limits: InputLimits = DEFAULT_INPUT_LIMITS): ManifestDoc[] {
  const out: ManifestDoc[] = [];
  forEachManifest(paths, (d) => void out.push(d), limits);
  return out;
}

/**
 * readManifests, handing each object to `visit` as it is read. A .json List is parsed item by item, so
 * a caller that keeps only a slim copy of each object never holds every raw object at once (a 50k-pod
 * snapshot is hundreds of MB of raw objects). Throws the same InputErrors, possibly after some visits.
 * Every input is bounded (./input.ts): devices are refused, files and streams over
 * `limits.maxBytes` and YAML over `limits.maxYamlBytes` too.
 */
export function forEachManifest(paths: readonly string[], visit: (doc: ManifestDoc) => void, limits: InputLimits = DEFAULT_INPUT_LIMITS): void {
  drain(manifestDocs(paths, limits), visit);
}

/**
 * forEachManifest as a generator, for a caller that must hand the event loop back while it reads (a
 * server loading its snapshot): the objects in order, with a PAUSE (undefined) wherever a bounded piece
 * of work was done (a chunk of a big .json file scanned). Every .json List is yielded item by item;
 * one YAML text is parsed whole before its first object is yielded (a YAML parse cannot stop halfway),
 * and a small file is read whole. Throws the same InputErrors as forEachManifest, when it gets there.
 */
export function* manifestDocs(paths: readonly string[], limits: InputLimits = DEFAULT_INPUT_LIMITS): Generator<DocOrPause, boolean> {
  for (const path of expand(paths)) {
    const file = path === STDIN ? STDIN_NAME : path;
    if (path !== STDIN && /\.json$/i.test(file)) {
      const size = sizeOf(path);
      if (size > limits.maxBytes) {
        throw new InputError(`larger than ${formatBytes(limits.maxBytes)}: refused (raise the bound with --max-input-bytes)`, { file });
      }
      if (size >= chunkedJsonList.fromBytes && (yield* jsonListChunkedDocs(path, file))) continue;
    }
    if (path !== STDIN && !/\.json$/i.test(file)) {
      // A YAML file over its bound is refused without reading it (unless it holds JSON).
      const size = sizeOf(path);
      if (size > limits.maxYamlBytes && !startsLikeJson(peekFile(path, 64 * 1024))) checkYamlSize(file, size, limits);
    }
    const text = readBoundedText(path, limits.maxBytes, undefined, /\.json$/i.test(file) ? undefined : yamlNarrow(limits));
    yield PAUSE;
    const docs: ManifestDoc[] = [];
    if (/\.json$/i.test(file)) {
      if (yield* jsonListDocs(file, text, 0)) continue;
      readJson(file, text, docs);
    } else {
      // YAML (or JSON in a .yaml file, which may fall back to YAML): whole documents, then yielded.
      readYaml(file, text, docs, limits);
    }
    yield PAUSE;
    for (const d of docs) yield d;
  }
  return true;
}
