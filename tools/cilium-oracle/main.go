// cilium-oracle answers policy verdicts with the Cilium agent's own code, for meshguard's
// differential test (test/conformance). It reads scenarios as JSON (stdin or the file named by the
// first argument) and writes one verdict per flow as JSON on stdout.
//
// Each scenario is loaded the way the agent loads a cluster:
//   - pods become security identities from the labels GetPodMetadata derives (namespace labels,
//     service account, cluster name), filtered by the default identity-label filter
//     (labelsfilter.Filter); named container ports go into the per-identity named-port map that the
//     agent's ipcache feeds to egress named-port resolution;
//   - CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy objects go through
//     CiliumNetworkPolicy.Parse (ParseToCiliumRule: namespace defaulting, Sanitize) and
//     RulesToPolicyEntries, NetworkPolicy objects through k8s.ParseNetworkPolicy, and the entries are
//     imported per resource with Repository.ReplaceByResource, as the policy importer does;
//   - each flow is looked up with policy.LookupFlow: the agent resolves the subject's selector policy
//     (ComputeSelectorPolicy), distills it into the endpoint's policy map state (DistillPolicy) and
//     looks the flow's key up in that map state, egress at the source and ingress at the destination.
//
// Nothing here re-implements a policy decision: the program only builds inputs and reads answers.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"

	"github.com/cilium/cilium/pkg/crypto/certificatemanager"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/identity"
	"github.com/cilium/cilium/pkg/identity/identitymanager"
	ipcachetypes "github.com/cilium/cilium/pkg/ipcache/types"
	"github.com/cilium/cilium/pkg/k8s"
	ciliumv2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	slim_corev1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/api/core/v1"
	slim_networkingv1 "github.com/cilium/cilium/pkg/k8s/slim/k8s/api/networking/v1"
	"github.com/cilium/cilium/pkg/labels"
	"github.com/cilium/cilium/pkg/labelsfilter"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	policytypes "github.com/cilium/cilium/pkg/policy/types"
	policyutils "github.com/cilium/cilium/pkg/policy/utils"
	testidentity "github.com/cilium/cilium/pkg/testutils/identity"
	testpolicy "github.com/cilium/cilium/pkg/testutils/policy"
	ciliumtypes "github.com/cilium/cilium/pkg/types"
	"github.com/cilium/cilium/pkg/u8proto"
)

// clusterName is the agent's default cluster-name; pods carry it as io.cilium.k8s.policy.cluster.
const clusterName = "default"

type input struct {
	// EnablePolicy is cilium-config enable-policy: default (when empty), always or never.
	EnablePolicy string     `json:"enablePolicy,omitempty"`
	Scenarios    []scenario `json:"scenarios"`
}

type scenario struct {
	ID string `json:"id"`
	// EnablePolicy is cilium-config enable-policy for this scenario (default when empty).
	EnablePolicy string `json:"enablePolicy"`
	// DualStack: the agent runs with IPv6 enabled too (IPv4 world addresses are then world-ipv4).
	DualStack  bool              `json:"dualStack"`
	Namespaces []namespace       `json:"namespaces"`
	Pods       []pod             `json:"pods"`
	Policies   []json.RawMessage `json:"policies"`
	Flows      []flow            `json:"flows"`
}

type namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

type pod struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Labels         map[string]string `json:"labels"`
	ServiceAccount string            `json:"serviceAccount"`
	Ports          []containerPort   `json:"ports"`
	InitPorts      []containerPort   `json:"initPorts"`
}

type containerPort struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// endpointRef names one side of a flow: a pod ("ns/name"), an entity (a reserved identity) or an IP.
type endpointRef struct {
	Pod    string `json:"pod,omitempty"`
	Entity string `json:"entity,omitempty"`
	IP     string `json:"ip,omitempty"`
}

type flow struct {
	From     endpointRef `json:"from"`
	To       endpointRef `json:"to"`
	Port     uint16      `json:"port"`
	Protocol string      `json:"protocol"`
}

type verdict struct {
	Egress  string `json:"egress,omitempty"`
	Ingress string `json:"ingress,omitempty"`
	Error   string `json:"error,omitempty"`
}

type result struct {
	ID string `json:"id"`
	// PolicyErrors: policies the agent refuses to import (parse or sanitize errors), by index.
	PolicyErrors map[int]string `json:"policyErrors,omitempty"`
	Error        string         `json:"error,omitempty"`
	Flows        []verdict      `json:"flows"`
}

type output struct {
	Cilium  string   `json:"cilium"`
	Results []result `json:"results"`
}

// ciliumVersion is set at build time (-X main.ciliumVersion=...).
var ciliumVersion = "unknown"

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println(ciliumVersion)
		return
	}
	var r io.Reader = os.Stdin
	if len(os.Args) > 1 && os.Args[1] != "-" {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fail(err)
		}
		defer f.Close()
		r = f
	}
	var in input
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		fail(fmt.Errorf("reading scenarios: %w", err))
	}
	setup(in.EnablePolicy)
	out := output{Cilium: ciliumVersion, Results: make([]result, 0, len(in.Scenarios))}
	for i := range in.Scenarios {
		out.Results = append(out.Results, run(&in.Scenarios[i]))
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cilium-oracle:", err)
	os.Exit(2)
}

// setup sets the agent options the policy code reads from its global configuration, with the
// values a Kubernetes-mode agent runs with.
func setup(enablePolicy string) {
	option.Config.ClusterName = clusterName
	// IPv4 always; IPv6 (dual stack) is set per scenario.
	option.Config.EnableIPv4 = true
	// The daemon turns allow-localhost "auto" into "always" in Kubernetes mode (daemon/cmd/daemon.go).
	option.Config.UnsafeDaemonConfigOption.AllowLocalhost = option.AllowLocalhostAlways
	// The L7 proxy is on (the Helm default): policies with HTTP rules are accepted and redirected.
	option.Config.EnableL7Proxy = true
	// enableDefaultDeny is honoured (the agent's default, defaults.EnableNonDefaultDenyPolicies).
	option.Config.EnableNonDefaultDenyPolicies = true
	if enablePolicy != "" {
		defaultPolicyMode = enablePolicy
	}
	setPolicyMode(defaultPolicyMode)
	// The cluster entity selects the local cluster by name, initialised at agent start.
	api.InitEntities(clusterName)
	// The default identity-label filter (no custom prefixes, no file).
	if err := labelsfilter.ParseLabelPrefixCfg(logger, nil, nil, ""); err != nil {
		fail(err)
	}
}

// defaultPolicyMode is the input's enablePolicy, for scenarios that do not set their own.
var defaultPolicyMode = option.DefaultEnforcement

// setPolicyMode sets the agent's enable-policy mode (default, always, never).
func setPolicyMode(mode string) {
	switch mode {
	case option.DefaultEnforcement, option.AlwaysEnforce, option.NeverEnforce:
		policy.SetPolicyEnabled(mode)
	default:
		fail(fmt.Errorf("unknown enablePolicy %q", mode))
	}
}

// namedPorts is the per-identity named-port map the ipcache hands to the policy engine.
type namedPorts struct{ m ciliumtypes.NamedPortMultiMap }

func (n namedPorts) GetNamedPorts() ciliumtypes.NamedPortMultiMap { return n.m }

var reservedByEntity = map[string]identity.NumericIdentity{
	"host":           identity.ReservedIdentityHost,
	"world":          identity.ReservedIdentityWorld,
	"world-ipv4":     identity.ReservedIdentityWorldIPv4,
	"world-ipv6":     identity.ReservedIdentityWorldIPv6,
	"unmanaged":      identity.ReservedIdentityUnmanaged,
	"health":         identity.ReservedIdentityHealth,
	"init":           identity.ReservedIdentityInit,
	"remote-node":    identity.ReservedIdentityRemoteNode,
	"kube-apiserver": identity.ReservedIdentityKubeAPIServer,
	"ingress":        identity.ReservedIdentityIngress,
}

func run(sc *scenario) (res result) {
	res.ID = sc.ID
	// GetCIDRLabels reads the enabled families when it labels an address.
	option.Config.EnableIPv6 = sc.DualStack
	if sc.EnablePolicy != "" {
		setPolicyMode(sc.EnablePolicy)
	} else {
		setPolicyMode(defaultPolicyMode)
	}
	defer func() {
		// A panic in the agent code is an answer too (the scenario is reported, not the run lost).
		if r := recover(); r != nil {
			res.Error = fmt.Sprintf("panic: %v", r)
			res.Flows = nil
		}
	}()

	nsByName := map[string]*slim_corev1.Namespace{}
	for _, n := range sc.Namespaces {
		ns := &slim_corev1.Namespace{}
		ns.Name = n.Name
		ns.Labels = n.Labels
		nsByName[n.Name] = ns
	}

	// Identities: one per distinct label set, as the identity allocator does.
	idmap := identity.IdentityMap{}
	byLabels := map[string]*identity.Identity{}
	podIDs := map[string]*identity.Identity{}
	podPorts := map[string]ciliumtypes.NamedPortMap{}
	npm := ciliumtypes.NewNamedPortMultiMap()
	next := identity.NumericIdentity(1000)
	for _, p := range sc.Pods {
		ns := nsByName[p.Namespace]
		if ns == nil {
			ns = &slim_corev1.Namespace{}
			ns.Name = p.Namespace
		}
		sp := &slim_corev1.Pod{}
		sp.Name, sp.Namespace, sp.Labels = p.Name, p.Namespace, p.Labels
		sp.Spec.ServiceAccountName = p.ServiceAccount
		c := slim_corev1.Container{Name: "c"}
		for _, cp := range p.Ports {
			c.Ports = append(c.Ports, slim_corev1.ContainerPort{Name: cp.Name, ContainerPort: int32(cp.Port), Protocol: slim_corev1.Protocol(cp.Protocol)})
		}
		sp.Spec.Containers = []slim_corev1.Container{c}
		ic := slim_corev1.Container{Name: "init"}
		for _, cp := range p.InitPorts {
			ic.Ports = append(ic.Ports, slim_corev1.ContainerPort{Name: cp.Name, ContainerPort: int32(cp.Port), Protocol: slim_corev1.Protocol(cp.Protocol)})
		}
		sp.Spec.InitContainers = []slim_corev1.Container{ic}
		ports, lbls := k8s.GetPodMetadata(logger, ns, sp)
		idLabels, _ := labelsfilter.Filter(labels.Map2Labels(lbls, labels.LabelSourceK8s))
		key := idLabels.String()
		id := byLabels[key]
		if id == nil {
			id = identity.NewIdentityFromLabelArray(next, idLabels.LabelArray())
			next++
			byLabels[key] = id
			idmap[id.ID] = id.LabelArray
		}
		ref := p.Namespace + "/" + p.Name
		podIDs[ref] = id
		podPorts[ref] = ports
		npm.Update(id.ID, nil, ports)
	}
	identity.IterateReservedIdentities(func(ni identity.NumericIdentity, id *identity.Identity) {
		idmap[ni] = id.LabelArray
	})
	// World addresses: a CIDR identity per queried IP (local scope, as the ipcache allocates them).
	ipIDs := map[string]*identity.Identity{}
	nextLocal := identity.IdentityScopeLocal | 1
	for _, f := range sc.Flows {
		for _, e := range []endpointRef{f.From, f.To} {
			if e.IP == "" || ipIDs[e.IP] != nil {
				continue
			}
			addr, err := netip.ParseAddr(e.IP)
			if err != nil {
				res.Error = fmt.Sprintf("bad IP %q: %v", e.IP, err)
				return res
			}
			lbls := labels.GetCIDRLabels(netip.PrefixFrom(addr, addr.BitLen())).LabelArray()
			id := identity.NewIdentityFromLabelArray(nextLocal, lbls)
			nextLocal++
			ipIDs[e.IP] = id
			idmap[id.ID] = id.LabelArray
		}
	}

	idManager := identitymanager.NewIDManager(logger)
	// HTTP rules are translated for Envoy while the policy is resolved: give the repository the
	// agent's translator (with the in-memory secret manager its own tests use).
	l7 := envoypolicy.NewEnvoyL7RulesTranslator(logger, certificatemanager.NewMockSecretManagerInline())
	repo := policy.NewPolicyRepository(logger, idmap, nil, l7, idManager, testpolicy.NewPolicyMetricsNoop())
	repo.GetSelectorCache().SetLocalIdentityNotifier(testidentity.NewDummyIdentityNotifier())
	repo.SetNamedPortsGetter(namedPorts{npm})
	idManager.Subscribe(testpolicy.SelectorCacheObserver{Cache: repo.GetSubjectSelectorCache()})

	for i, raw := range sc.Policies {
		entries, rid, err := parsePolicy(raw)
		if err != nil {
			if res.PolicyErrors == nil {
				res.PolicyErrors = map[int]string{}
			}
			res.PolicyErrors[i] = err.Error()
			continue
		}
		repo.ReplaceByResource(entries, rid)
	}

	resolve := func(e endpointRef) (*identity.Identity, ciliumtypes.NamedPortMap, error) {
		switch {
		case e.Pod != "":
			id := podIDs[e.Pod]
			if id == nil {
				return nil, nil, fmt.Errorf("unknown pod %q", e.Pod)
			}
			return id, podPorts[e.Pod], nil
		case e.Entity != "":
			ni, ok := reservedByEntity[e.Entity]
			if !ok {
				return nil, nil, fmt.Errorf("unknown entity %q", e.Entity)
			}
			// An IPv4 world peer of a single-stack agent has the plain world identity (getWorldLabel).
			if ni == identity.ReservedIdentityWorldIPv4 && !sc.DualStack {
				ni = identity.ReservedIdentityWorld
			}
			return identity.LookupReservedIdentity(ni), nil, nil
		case e.IP != "":
			return ipIDs[e.IP], nil, nil
		}
		return nil, nil, fmt.Errorf("empty endpoint")
	}

	for _, f := range sc.Flows {
		from, _, err1 := resolve(f.From)
		to, toPorts, err2 := resolve(f.To)
		if err1 != nil || err2 != nil {
			res.Flows = append(res.Flows, verdict{Error: fmt.Sprint(err1, err2)})
			continue
		}
		proto, err := u8proto.ParseProtocol(f.Protocol)
		if err != nil {
			res.Flows = append(res.Flows, verdict{Error: err.Error()})
			continue
		}
		fl := policytypes.Flow{From: from, To: to, Proto: proto, Dport: f.Port}
		// The destination endpoint's own named ports resolve ingress named ports.
		if toPorts != nil {
			fl.NamedPortsTCP = map[string]uint16{}
			fl.NamedPortsUDP = map[string]uint16{}
			for name, pp := range toPorts {
				switch pp.Proto {
				case u8proto.TCP:
					fl.NamedPortsTCP[name] = pp.Port
				case u8proto.UDP:
					fl.NamedPortsUDP[name] = pp.Port
				}
			}
		}
		v, _, _, err := policy.LookupFlow(logger, repo, idManager, fl)
		if err != nil {
			res.Flows = append(res.Flows, verdict{Error: err.Error()})
			continue
		}
		res.Flows = append(res.Flows, verdict{Egress: decision(v.Egress), Ingress: decision(v.Ingress)})
	}
	return res
}

func decision(d policytypes.Decision) string {
	switch d {
	case policytypes.DecisionAllowed:
		return "allowed"
	case policytypes.DecisionDenied:
		return "denied"
	}
	return "undecided"
}

type objectHead struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// parsePolicy turns one policy object into the entries the agent imports, and its resource ID.
func parsePolicy(raw json.RawMessage) (policytypes.PolicyEntries, ipcachetypes.ResourceID, error) {
	var head objectHead
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, "", err
	}
	switch head.Kind {
	case "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy":
		cnp := &ciliumv2.CiliumNetworkPolicy{}
		if err := json.Unmarshal(raw, cnp); err != nil {
			return nil, "", err
		}
		kind := ipcachetypes.ResourceKindCNP
		if head.Kind == "CiliumClusterwideNetworkPolicy" {
			// The agent converts a CCNP into a namespace-less CNP (pkg/k8s/types SlimCNP).
			cnp.Namespace = ""
			kind = ipcachetypes.ResourceKindCCNP
		} else if cnp.Namespace == "" {
			cnp.Namespace = "default"
		}
		rules, err := cnp.Parse(logger, clusterName)
		if err != nil {
			return nil, "", err
		}
		return policyutils.RulesToPolicyEntries(rules), ipcachetypes.NewResourceID(kind, cnp.Namespace, cnp.Name), nil
	case "NetworkPolicy":
		np := &slim_networkingv1.NetworkPolicy{}
		if err := json.Unmarshal(raw, np); err != nil {
			return nil, "", err
		}
		if np.Namespace == "" {
			np.Namespace = "default"
		}
		entries, err := k8s.ParseNetworkPolicy(logger, clusterName, np)
		if err != nil {
			return nil, "", err
		}
		return entries, ipcachetypes.NewResourceID(ipcachetypes.ResourceKindNetpol, np.Namespace, np.Name), nil
	}
	return nil, "", fmt.Errorf("unsupported kind %q", head.Kind)
}
