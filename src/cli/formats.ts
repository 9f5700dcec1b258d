// CI-native renderings of findings, shared by `check` and `audit`: SARIF 2.1.0 (GitHub code scanning,
// GitLab, Azure DevOps), JUnit XML (every CI's test report view) and GitHub workflow commands
// (annotations on the pull request). Each takes the same neutral shape, so both commands answer alike.
// The words come from src/verdict/render.ts (message and fix, rendered from the finding's code).

import { isAbsolute, relative, sep } from 'node:path';

import { withFix } from '../verdict/render.ts';

export interface ReportFinding {
  readonly rule: string;
  /** The finding's stable code (`<rule>/<kind>`, or the verdict layer's own `meshguard/...`). */
  readonly code: string;
  readonly action: 'deny' | 'warn' | 'audit';
  readonly message: string;
  readonly fix?: string;
}

export interface ReportObject {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** The manifest file and line the object came from, when there is one. */
  readonly file?: string;
  readonly line?: number;
  readonly findings: readonly ReportFinding[];
}

export interface ReportRule {
  readonly id: string;
  readonly summary: string;
  readonly severity: string;
  /** An https link to the rule's page. */
  readonly helpUri?: string;
}

export interface ReportMeta {
  readonly tool: string;
  readonly version: string;
  readonly informationUri?: string;
  readonly rules: readonly ReportRule[];
  /** Name of the run: `meshguard check` or `meshguard audit`. */
  readonly suite: string;
}

export function objectRef(o: Pick<ReportObject, 'kind' | 'namespace' | 'name'>): string {
  return `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;
}

/**
 * A manifest path as a SARIF artifact URI: relative to the working directory when it is below it
 * (code scanning resolves it against the repository), each segment percent-encoded (`#`, `%`, spaces).
 */
export function fileUri(file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file);
  const path = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
  const encoded = path.split(sep).map(encodeURIComponent).join('/');
  return isAbsolute(path) ? `file://${encoded.startsWith('/') ? '' : '/'}${encoded}` : encoded;
}

function sarifLevel(action: ReportFinding['action']): 'error' | 'warning' | 'note' {
  return action === 'deny' ? 'error' : action === 'warn' ? 'warning' : 'note';
}

/** SARIF 2.1.0: one run, the catalogue as the driver's rules, one result per finding. */
export function renderSarif(objects: readonly ReportObject[], meta: ReportMeta): string {
  const index = new Map(meta.rules.map((r, i) => [r.id, i]));
  const results = objects.flatMap((o) =>
    o.findings.map((f) => ({
      ruleId: f.rule,
      ...(index.has(f.rule) ? { ruleIndex: index.get(f.rule) } : {}),
      level: sarifLevel(f.action),
      message: { text: `${objectRef(o)}: ${withFix(f)}` },
      locations: [
        {
          ...(o.file && o.file !== '<stdin>'
            ? { physicalLocation: { artifactLocation: { uri: fileUri(o.file) }, region: { startLine: Math.max(1, o.line ?? 1) } } }
            : {}),
          logicalLocations: [{ name: o.name, fullyQualifiedName: objectRef(o), kind: 'resource' }],
        },
      ],
      properties: { code: f.code },
    })),
  );
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: meta.tool,
            version: meta.version,
            ...(meta.informationUri ? { informationUri: meta.informationUri } : {}),
            rules: meta.rules.map((r) => ({
              id: r.id,
              shortDescription: { text: r.summary },
              ...(r.helpUri ? { helpUri: r.helpUri } : {}),
              defaultConfiguration: { level: r.severity === 'B' ? 'error' : 'warning' },
            })),
          },
        },
        results,
      },
    ],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}

function xml(s: string): string {
  // Characters XML 1.0 cannot hold at all are dropped; the five specials are escaped.
  return s
    .replace(/[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * JUnit XML: a test suite per run, a test case per object and rule with a finding (a failure when the
 * finding denies), and one passing test case for each object without findings.
 */
export function renderJunit(objects: readonly ReportObject[], meta: ReportMeta): string {
  const cases: string[] = [];
  let failures = 0;
  for (const o of objects) {
    const classname = xml(objectRef(o));
    const where = o.file ? ` (${o.file}${o.line ? `:${o.line}` : ''})` : '';
    if (o.findings.length === 0) {
      cases.push(`    <testcase classname="${classname}" name="no findings"/>`);
      continue;
    }
    for (const f of o.findings) {
      const text = xml(`${withFix(f, '\nFix: ')}${where}`);
      if (f.action === 'deny') {
        failures++;
        cases.push(`    <testcase classname="${classname}" name="${xml(f.rule)}">\n      <failure type="deny" message="${xml(f.message)}">${text}</failure>\n    </testcase>`);
      } else {
        cases.push(`    <testcase classname="${classname}" name="${xml(f.rule)}">\n      <system-out>${xml(f.action)}: ${text}</system-out>\n    </testcase>`);
      }
    }
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${xml(meta.suite)}" tests="${cases.length}" failures="${failures}">`,
    `  <testsuite name="${xml(meta.suite)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="0">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/** GitHub workflow command escaping: data, then property values (which also escape : and ,). */
function ghData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}
function ghProperty(s: string): string {
  return ghData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** GitHub Actions annotations: `::error file=F,line=L,title=T::message`, one line per finding. */
export function renderGithub(objects: readonly ReportObject[]): string {
  const lines: string[] = [];
  for (const o of objects) {
    for (const f of o.findings) {
      const command = f.action === 'deny' ? 'error' : f.action === 'warn' ? 'warning' : 'notice';
      const props = [
        ...(o.file && o.file !== '<stdin>' ? [`file=${ghProperty(o.file)}`, `line=${Math.max(1, o.line ?? 1)}`] : []),
        `title=${ghProperty(`meshguard ${f.rule}: ${objectRef(o)}`)}`,
      ];
      lines.push(`::${command} ${props.join(',')}::${ghData(withFix(f, '\nFix: '))}`);
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/**
 * A finding as `check` and `audit` print it in JSON: the contract fields, each optional one only when set.
 * `code` (stable, `<rule>/<kind>`) is what tools match on; `message` and `fix` stay for readers.
 */
export function findingJson<A extends string>(
  f: {
    readonly rule: string;
    readonly code: string;
    readonly action: A;
    readonly message: string;
    readonly fix?: string;
    readonly victims?: readonly string[];
    readonly victimCount?: number;
  },
  docsUrl: (rule: string) => string,
): { rule: string; code: string; action: A; message: string; fix?: string; victims?: readonly string[]; victimCount?: number; docs: string } {
  return {
    rule: f.rule,
    code: f.code,
    action: f.action,
    message: f.message,
    ...(f.fix !== undefined ? { fix: f.fix } : {}),
    ...(f.victims !== undefined ? { victims: f.victims } : {}),
    ...(f.victimCount !== undefined ? { victimCount: f.victimCount } : {}),
    docs: docsUrl(f.rule),
  };
}
