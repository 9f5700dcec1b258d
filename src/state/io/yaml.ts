// YAML read as kubectl reads it (YAML 1.1), every object with the line it starts on.

import { isMap, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode, type ParseOptions, type SchemaOptions, type DocumentOptions } from 'yaml';

import { InputError } from '../../core/errors.ts';
import { errMessage } from './files.ts';
import { checkYamlSize, type InputLimits } from './input.ts';
import { collect, type ManifestDoc } from './objects.ts';

/**
 * YAML as kubectl reads it (sigs.k8s.io/yaml, go-yaml v2): YAML 1.1 scalars, so `yes`, `no`, `on`,
 * `off`, `y` and `n` are booleans and `0755` is octal, and `<<` merges. go-yaml v2 has no sexagesimal
 * numbers and keeps timestamps, binary, sets and ordered maps as plain values: those tags are left out.
 */
export const KUBECTL_YAML: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  customTags: (tags) =>
    tags.filter((tag) => {
      if (typeof tag !== 'object' || tag === null) return true;
      const name = String((tag as { tag?: string }).tag ?? '');
      const format = (tag as { format?: string }).format;
      return format !== 'TIME' && !/:(timestamp|binary|omap|pairs|set)$/.test(name);
    }),
};

function lineOf(node: YamlNode | null | undefined, lc: LineCounter): number {
  const off = node?.range?.[0];
  return off === undefined ? 1 : lc.linePos(off).line;
}

/** collect() for a YAML document: lines from the node ranges. */
function collectYaml(obj: unknown, node: YamlNode | null | undefined, file: string, lc: LineCounter, out: ManifestDoc[]): void {
  const itemsNode = isMap(node) ? node.get('items', true) : undefined;
  const itemNodes = isSeq(itemsNode) ? itemsNode.items : [];
  collect(obj, file, lineOf(node, lc), (i) => {
    const n = itemNodes[i] as YamlNode | undefined;
    return n ? lineOf(n, lc) : undefined;
  }, out);
}

function yamlErrorText(e: { message: string }): string {
  // The first line, without the position the InputError prefix already carries.
  const first = e.message.split('\n')[0] ?? e.message;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}

/** The objects of a YAML text (Lists flattened), with their lines; throws InputError on invalid YAML. */
export function parseYaml(file: string, text: string, out: ManifestDoc[], limits: InputLimits): void {
  checkYamlSize(file, Buffer.byteLength(text), limits);
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { ...KUBECTL_YAML, lineCounter: lc, prettyErrors: true, uniqueKeys: false });
  // parseAllDocuments returns an EmptyStream (no docs) or an array of Documents.
  if (!Array.isArray(docs)) return;
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      throw new InputError(`invalid YAML: ${yamlErrorText(err)}`, { file, line: err.linePos?.[0]?.line ?? lineOf(doc.contents, lc) });
    }
    if (doc.contents === null) continue; // empty document ("---" alone, or comments only)
    let obj: unknown;
    try {
      obj = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      throw new InputError(`invalid YAML: ${errMessage(e)}`, { file, line: lineOf(doc.contents, lc) });
    }
    if (obj === null || obj === undefined) continue;
    collectYaml(obj, doc.contents, file, lc, out);
  }
}
