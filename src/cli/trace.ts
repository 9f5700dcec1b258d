// `meshguard trace`: can pod A reach a target on port/protocol, and which policies decide it — answered
// from snapshot files by the policy engine, explained per direction like `cilium policy trace`.
//
// Exit codes: 0 every query allowed, 1 at least one denied, 2 usage or input error (one line on stderr,
// nothing on stdout). The command sets process.exitCode and never calls process.exit.

import { Command, CommanderError } from 'commander';

import { InputError } from '../core/errors.ts';
import { canonicalIp, parseCidr } from '../policy/cidr.ts';
import { evaluate, TARGET_ENTITIES } from '../policy/reachability.ts';
import type { IstioDecision } from '../policy/authz.ts';
import { meshPath, type MeshPath, type WireHop } from '../policy/mesh-path.ts';
import { clusterVersions, SUPPORTED, unsupported, type ClusterVersions } from '../policy/versions.ts';
import type { DirectionVerdict, PolicyRef, Protocol, Reachability, Target } from '../policy/types.ts';
import { loadSnapshot } from '../state/snapshot.ts';
import type { ClusterState, Pod } from '../core/objects.ts';
import { DEFAULT_INPUT_LIMITS, readBoundedText, type InputLimits } from '../state/io/input.ts';
import { addLimitOptions, inputLimits } from './common.ts';

export interface TraceIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const defaultIO: TraceIO = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
};

/** One query as given on the command line or in a --queries file. */
export interface TraceQuery {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
}

interface ResolvedQuery extends TraceQuery {
  readonly fromPod: Pod;
  readonly target: Target;
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
// RFC 1123 names, optionally with a trailing dot.
const DNS_NAME = /^(?=.{1,253}\.?$)([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?)*\.?$/i;

/** "PORT/PROTO" -> port and protocol (PROTO tcp|udp|sctp in any case). */
export function parsePortSpec(spec: string): { port: number; protocol: Protocol } {
  const m = /^(\d{1,5})\/([A-Za-z]+)$/.exec(spec.trim());
  if (!m) throw new InputError(`--port: expected PORT/PROTO such as 53/udp (got "${spec}")`);
  return { port: checkPort(Number(m[1]), spec), protocol: checkProtocol(m[2]!) };
}

function checkPort(port: number, shown: unknown): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InputError(`port must be 1-65535 (got ${JSON.stringify(shown)})`);
  return port;
}

function checkProtocol(p: string): Protocol {
  const up = p.toUpperCase() as Protocol;
  if (!PROTOCOLS.includes(up)) throw new InputError(`protocol must be tcp, udp or sctp (got "${p}")`);
  return up;
}

function podRef(state: ClusterState, ref: string, what: string): Pod {
  const parts = ref.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new InputError(`${what}: expected NAMESPACE/POD (got "${ref}")`);
  const pod = state.get('Pod', parts[0], parts[1]);
  if (!pod) throw new InputError(`${what}: unknown pod ${ref} (not in the state)`);
  return pod;
}

/** A TARGET string (`NS/POD`, `cidr:IP`, `entity:NAME`, `fqdn:NAME`) as an engine Target. */
export function parseTarget(state: ClusterState, to: string): Target {
  const colon = to.indexOf(':');
  const scheme = colon > 0 ? to.slice(0, colon).toLowerCase() : '';
  const rest = colon > 0 ? to.slice(colon + 1) : to;
  switch (scheme) {
    case 'cidr': {
      // One address; a host prefix (/32, /128) is accepted as that address.
      const r = parseCidr(rest);
      const full = r && (r[0].kind() === 'ipv4' ? r[1] === 32 : r[1] === 128);
      const ip = full ? canonicalIp(r[0].toString()) : undefined;
      if (!ip) throw new InputError(`--to: cidr: expects one IP address (got "${rest}")`);
      return { type: 'ip', ip };
    }
    case 'entity': {
      const e = rest.toLowerCase();
      if (!(TARGET_ENTITIES as readonly string[]).includes(e)) {
        throw new InputError(`--to: unknown or non-single entity "${rest}"; use one of ${TARGET_ENTITIES.join(', ')}`);
      }
      return { type: 'entity', entity: e };
    }
    case 'fqdn':
      if (!DNS_NAME.test(rest)) throw new InputError(`--to: fqdn: expects a DNS name (got "${rest}")`);
      return { type: 'fqdn', name: rest.toLowerCase().replace(/\.$/, '') };
    case '':
      if (to.includes('/')) return { type: 'pod', pod: podRef(state, to, '--to') };
      break;
  }
  throw new InputError(`--to: expected NS/POD, cidr:IP, entity:NAME or fqdn:NAME (got "${to}")`);
}

function resolve(state: ClusterState, q: TraceQuery): ResolvedQuery {
  return { ...q, fromPod: podRef(state, q.from, '--from'), target: parseTarget(state, q.to) };
}

/** The queries of a --queries file: a JSON array of {from, to, port, protocol}. */
export function readQueries(file: string, limits: InputLimits = DEFAULT_INPUT_LIMITS): TraceQuery[] {
  const text = readBoundedText(file, limits.maxBytes);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new InputError(`invalid JSON: ${(e as Error).message}`, { file });
  }
  if (!Array.isArray(data)) throw new InputError('expected a JSON array of {"from","to","port","protocol"}', { file });
  return data.map((raw, i) => {
    const where = `query ${i + 1}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: expected an object`, { file });
    const o = raw as Record<string, unknown>;
    for (const k of ['from', 'to'] as const) {
      if (typeof o[k] !== 'string' || !o[k]) throw new InputError(`${where}: "${k}" must be a non-empty string`, { file });
    }
    const portRaw = o.port;
    const port = typeof portRaw === 'number' ? portRaw : typeof portRaw === 'string' && /^\d+$/.test(portRaw) ? Number(portRaw) : NaN;
    if (typeof o.protocol !== 'string') throw new InputError(`${where}: "protocol" must be tcp, udp or sctp`, { file });
    try {
      return { from: o.from as string, to: o.to as string, port: checkPort(port, portRaw), protocol: checkProtocol(o.protocol) };
    } catch (e) {
      throw new InputError(`${where}: ${(e as Error).message}`, { file });
    }
  });
}

function refJson(r: PolicyRef): { kind: string; namespace: string; name: string } {
  return { kind: r.kind, namespace: r.namespace, name: r.name };
}

function directionJson(v: DirectionVerdict): Record<string, unknown> {
  return { enforced: v.enforced, verdict: v.verdict, policies: v.decidingPolicies.map(refJson), reason: v.reason };
}

/** The versions as trace prints them in JSON: the release, or "unknown" (then the newest behaviour applies). */
export function versionsJson(v: ClusterVersions): { cilium: string; istio: string } {
  return { cilium: v.cilium.version, istio: v.istio.version };
}

function hopJson(h: WireHop): Record<string, unknown> {
  return {
    from: h.from, fromIp: h.fromIp ?? null, to: h.to, toIp: h.toIp ?? null, port: h.port, protocol: h.protocol, kind: h.kind,
    allowed: h.cilium.allowed, egress: directionJson(h.cilium.egress), ingress: directionJson(h.cilium.ingress),
  };
}

function istioJson(d: IstioDecision): Record<string, unknown> {
  return { enforcer: d.enforcer, at: d.at, principal: d.principal ?? null, verdict: d.verdict, policies: d.policies.map((p) => ({ ...p })), reason: d.reason };
}

/** The `mesh` member of a JSON answer (docs/cli.md): the path on the wire, each layer's verdict, who decides. */
export function meshJson(m: MeshPath): Record<string, unknown> {
  return {
    allowed: m.allowed, decidedBy: m.decidedBy, summary: m.summary,
    source: m.sourceMode, destination: m.destinationMode, destinationPod: m.destination, appPort: m.appPort,
    wire: m.wire, waypoint: m.waypoint ?? null,
    hops: m.hops.map(hopJson), istio: m.istio.map(istioJson), notes: [...m.notes],
  };
}

/**
 * The JSON form of one answer (docs/cli.md), with the versions whose behaviour it assumes. `allowed`,
 * `egress` and `ingress` are Cilium's verdict on the application port; `mesh`, when an end is in the
 * mesh, the path the connection really takes.
 */
export function reachabilityJson(r: Reachability, versions?: ClusterVersions, mesh?: MeshPath): Record<string, unknown> {
  const out: Record<string, unknown> = { allowed: r.allowed, egress: directionJson(r.egress), ingress: directionJson(r.ingress) };
  if (mesh) out.mesh = meshJson(mesh);
  if (versions) out.versions = versionsJson(versions);
  return out;
}

/** The text header naming the versions (and where they were read), once per trace. */
export function versionsText(v: ClusterVersions): string {
  const src = (c: ClusterVersions['cilium'], range: { oldest: string; newest: string }): string => {
    if (!c.source) return ' (not in the state: newest supported behaviour assumed)';
    const outside = unsupported(c, range) ? ` (outside the supported ${range.oldest}-${range.newest}: verdicts follow the nearest supported release)` : '';
    return ` from ${c.source}${outside}`;
  };
  return `Cluster: Cilium ${v.cilium.version}${src(v.cilium, SUPPORTED.cilium)}; Istio ${v.istio.version}${src(v.istio, SUPPORTED.istio)}\n`;
}

function refText(r: PolicyRef): string {
  return `${r.kind} ${r.namespace ? r.namespace + '/' : ''}${r.name}`;
}

function directionLines(lines: string[], indent: string, name: string, at: string, v: DirectionVerdict): void {
  lines.push(`${indent}${name} (${at}): ${v.enforced ? 'policy enforced' : 'not enforced'}, ${v.verdict.toUpperCase()}`);
  if (v.decidingPolicies.length > 0) {
    const label = v.verdict === 'allowed' ? 'allowed by' : 'decided by';
    lines.push(`${indent}  ${label}: ${v.decidingPolicies.map(refText).join(', ')}`);
  }
  lines.push(`${indent}  reason: ${v.reason}`);
}

const WIRE_TEXT: Record<MeshPath['wire'], string> = {
  hbone: 'HBONE (TCP 15008)',
  'hbone-via-waypoint': 'HBONE (TCP 15008) through a waypoint',
  mtls: 'Istio mTLS on the application port',
  plaintext: 'plaintext on the application port',
};

function meshText(lines: string[], m: MeshPath): void {
  lines.push(`Mesh path (${m.sourceMode} -> ${m.destinationMode}): ${WIRE_TEXT[m.wire]}${m.waypoint ? ` ${m.waypoint}` : ''}`);
  for (const h of m.hops) {
    const ip = (name: string, addr: string | undefined): string => (addr ? `${name} ${addr}` : name);
    lines.push(`  Wire ${ip(h.from, h.fromIp)} -> ${ip(h.to, h.toIp)} on ${h.port}/${h.protocol} (${h.kind}): Cilium ${h.cilium.allowed ? 'ALLOWED' : 'DENIED'}`);
    directionLines(lines, '    ', 'Egress', h.from, h.cilium.egress);
    directionLines(lines, '    ', 'Ingress', h.to, h.cilium.ingress);
  }
  for (const d of m.istio) {
    lines.push(`  Istio at ${d.enforcer} ${d.at}${d.principal ? ` (peer ${d.principal})` : ' (no peer identity)'}: ${d.verdict.toUpperCase()}`);
    if (d.policies.length > 0) lines.push(`    ${d.verdict === 'allowed' ? 'allowed by' : 'decided by'}: ${d.policies.map((p) => `${p.kind} ${p.namespace}/${p.name} (${p.action})`).join(', ')}`);
    lines.push(`    reason: ${d.reason}`);
  }
  for (const n of m.notes) lines.push(`  note: ${n}`);
  lines.push(`  Decided: ${m.summary}`);
}

/**
 * Text explanation of one answer, per direction, in the spirit of `cilium policy trace`; with a mesh
 * path, the connections on the wire and Istio's decisions follow, and the final verdict is the path's.
 */
export function reachabilityText(q: TraceQuery, r: Reachability, mesh?: MeshPath): string {
  const lines = [`Tracing ${q.from} -> ${q.to} on ${q.port}/${q.protocol}`];
  if (mesh) lines.push(`Application port (Cilium's verdict on ${q.port}/${q.protocol}, as a path outside the mesh would get it): ${r.allowed ? 'ALLOWED' : 'DENIED'}`);
  directionLines(lines, '  ', 'Egress', q.from, r.egress);
  directionLines(lines, '  ', 'Ingress', q.to, r.ingress);
  if (mesh) {
    meshText(lines, mesh);
    const by = mesh.decidedBy === 'cilium' ? ' by Cilium' : mesh.decidedBy === 'istio' ? ' by Istio' : '';
    lines.push(`Final verdict: ${mesh.allowed ? 'ALLOWED' : 'DENIED'}${by} (the mesh path)`);
  } else {
    lines.push(`Final verdict: ${r.allowed ? 'ALLOWED' : 'DENIED'}`);
  }
  return lines.join('\n') + '\n';
}

interface TraceOptions {
  state?: string[];
  from?: string;
  to?: string;
  port?: string;
  queries?: string;
  output?: string;
  maxInputBytes?: string;
  maxYamlBytes?: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Runs trace with parsed options; returns the exit code. Throws InputError for usage/input problems. */
function runTrace(opts: TraceOptions, io: TraceIO): number {
  const output = (opts.output ?? 'text').toLowerCase();
  if (output !== 'text' && output !== 'json') throw new InputError(`--output: must be text or json (got "${opts.output}")`);
  if (!opts.state || opts.state.length === 0) throw new InputError('--state PATH is required (a snapshot file or directory)');
  const single = opts.from !== undefined || opts.to !== undefined || opts.port !== undefined;
  if (opts.queries !== undefined && single) throw new InputError('give either --queries FILE or --from/--to/--port, not both');
  const limits = inputLimits(opts);
  let queries: TraceQuery[];
  if (opts.queries !== undefined) {
    queries = readQueries(opts.queries, limits);
  } else {
    if (opts.from === undefined || opts.to === undefined || opts.port === undefined) {
      throw new InputError('--from NS/POD, --to TARGET and --port PORT/PROTO are required (or --queries FILE)');
    }
    const { port, protocol } = parsePortSpec(opts.port);
    queries = [{ from: opts.from, to: opts.to, port, protocol }];
  }
  const state = loadSnapshot(opts.state, { limits });
  // Resolve every query before answering any, so an input error leaves stdout empty.
  const resolved = queries.map((q, i) => {
    try {
      return resolve(state, q);
    } catch (e) {
      if (e instanceof InputError && opts.queries !== undefined) throw new InputError(`query ${i + 1}: ${e.message}`, { file: opts.queries });
      throw e;
    }
  });
  const answers = resolved.map((q) => evaluate(state, q.fromPod, q.target, q.port, q.protocol));
  const paths = resolved.map((q) => meshPath(state, q.fromPod, q.target, q.port, q.protocol));
  const versions = clusterVersions(state);
  if (output === 'json') {
    const body = opts.queries !== undefined
      ? answers.map((a, i) => reachabilityJson(a, versions, paths[i]))
      : reachabilityJson(answers[0]!, versions, paths[0]);
    io.stdout(JSON.stringify(body, null, 2) + '\n');
  } else {
    io.stdout(versionsText(versions) + resolved.map((q, i) => reachabilityText(q, answers[i]!, paths[i])).join('\n'));
  }
  // With a mesh path, the connection goes through when that path does; else by Cilium's app-port verdict.
  return answers.every((a, i) => paths[i]?.allowed ?? a.allowed) ? 0 : 1;
}

/** The `trace` subcommand. `io` is for tests; by default it writes to process.stdout/stderr. */
export function traceCommand(io: TraceIO = defaultIO): Command {
  const cmd = addLimitOptions(new Command('trace'));
  cmd
    .description('explain whether a pod can reach a pod, IP, Cilium entity or FQDN on a port, from snapshot files')
    .option('--state <path>', 'snapshot file or directory of YAML/JSON (repeatable)', collect)
    .option('--from <ns/pod>', 'client pod')
    .option('--to <target>', 'NS/POD, cidr:IP, entity:NAME or fqdn:NAME')
    .option('--port <port/proto>', 'destination port and protocol, e.g. 53/udp')
    .option('--queries <file.json>', 'JSON array of {"from","to","port","protocol"} (output is an array in the same order)')
    .option('-o, --output <format>', 'output format: text or json', 'text')
    .allowExcessArguments(false)
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      // commander's own usage errors: one line, no help dump.
      outputError: (s, write) => write(s.split('\n')[0]!.replace(/^error: /, 'meshguard: ') + '\n'),
    })
    .exitOverride((err: CommanderError) => {
      // Help and version are successes; every other commander error is a usage error (exit 2).
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exitCode = ok ? 0 : 2;
      throw err;
    })
    .action((opts: TraceOptions) => {
      try {
        process.exitCode = runTrace(opts, io);
      } catch (e) {
        if (e instanceof InputError) {
          io.stderr(`meshguard: ${e.message.split('\n')[0]}\n`);
          process.exitCode = 2;
          return;
        }
        io.stderr(`meshguard: internal error: ${(e as Error)?.message ?? String(e)}\n`);
        process.exitCode = 3;
      }
    });
  return cmd;
}
