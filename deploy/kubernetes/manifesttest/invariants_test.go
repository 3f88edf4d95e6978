package manifesttest

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// What the manifests promise (README.md in deploy/kubernetes).
const (
	replicas = 2
	// defaultShutdownGrace is beamgate's shutdown_grace when the key is
	// left out: how long live sessions may go on after SIGTERM.
	// terminationGracePeriodSeconds covers it plus the preStop sleep.
	defaultShutdownGrace = 30 * time.Second

	sshPort  = 2222
	opsPort  = 9102
	epmdPort = 4369
	// distMin and distMax are the production nodes' distribution ports
	// (inet_dist_listen_min and inet_dist_listen_max).
	distMin   = 9100
	distMax   = 9155
	vaultPort = 8200
	dnsPort   = 53

	gatewayContainer = "beamgate"
	configFile       = "/etc/beamgate/beamgate.yaml"
	configKey        = "beamgate.yaml"
	vaultSecrets     = "/vault/secrets/"
	monitoringNS     = "monitoring"
	vaultAnnotation  = "vault.hashicorp.com/"
)

// podLabels returns the Deployment's pod template labels, failing unless
// its selector matches them.
func podLabels(t *testing.T, d *appsv1.Deployment) labels.Set {
	t.Helper()
	l := labels.Set(d.Spec.Template.Labels)
	if !selects(t, d.Spec.Selector, l) {
		t.Fatalf("Deployment %s: selector %v does not match its pod labels %v", d.Name, d.Spec.Selector, l)
	}
	return l
}

// selects reports whether sel is non-empty and matches l.
func selects(t *testing.T, sel *metav1.LabelSelector, l labels.Set) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return s.Matches(l)
}

// container returns the gateway container of d.
func container(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == gatewayContainer {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("Deployment %s: no container %q", d.Name, gatewayContainer)
	return nil
}

// containerPort resolves p (a number or a port name) against c's ports; 0
// when a name is not declared.
func containerPort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func TestDeployment(t *testing.T) {
	ms := loadManifests(t)
	d := only[appsv1.Deployment](t, ms)
	pod := &d.Spec.Template.Spec
	l := podLabels(t, d)

	if n := d.Spec.Replicas; n == nil || *n != replicas {
		t.Errorf("replicas = %s, want %d", show(n), replicas)
	}

	// Anti-affinity: required, one replica per node.
	var anti bool
	if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && selects(t, term.LabelSelector, l) {
				anti = true
			}
		}
	}
	if !anti {
		t.Errorf("no required podAntiAffinity term on kubernetes.io/hostname selecting the pods %v", l)
	}

	c := container(t, d)
	if !slices.Equal(c.Args, []string{"serve", "--config", configFile}) || len(c.Command) != 0 {
		t.Errorf("command %q args %q, want the image's entrypoint with args [serve --config %s]", c.Command, c.Args, configFile)
	}
	if img := c.Image; img == "" || strings.HasSuffix(img, ":latest") || imageName(img) == img {
		t.Errorf("image %q: want a pinned tag or digest", img)
	}

	// Probes: HTTP on the ops port, not on SSH.
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/livez"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		switch {
		case p.probe == nil:
			t.Errorf("no %s", p.name)
		case p.probe.HTTPGet == nil:
			t.Errorf("%s is not an httpGet probe", p.name)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		case containerPort(c, p.probe.HTTPGet.Port) != opsPort:
			t.Errorf("%s port %s is not the ops port %d", p.name, p.probe.HTTPGet.Port.String(), opsPort)
		}
	}
	if p := c.StartupProbe; p != nil && (p.HTTPGet == nil || containerPort(c, p.HTTPGet.Port) != opsPort) {
		t.Errorf("startupProbe is not an httpGet probe on the ops port")
	}
	for _, want := range []struct {
		name string
		port int32
	}{{"ssh", sshPort}, {"ops", opsPort}} {
		if got := containerPort(c, intstr.FromString(want.name)); got != want.port {
			t.Errorf("container port %q = %d, want %d", want.name, got, want.port)
		}
	}

	// preStop: a sleep handler (no shell in the image), inside the grace period.
	var preStop int64
	switch {
	case c.Lifecycle == nil || c.Lifecycle.PreStop == nil:
		t.Errorf("no lifecycle.preStop")
	case c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0:
		t.Errorf("lifecycle.preStop is not a sleep of some seconds (the image has no shell for exec)")
	case c.Lifecycle.PreStop.Exec != nil:
		t.Errorf("lifecycle.preStop.exec: the image has no shell")
	default:
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
	}
	_, cfg := loadGatewayConfig(t, ms)
	grace := defaultShutdownGrace
	if cfg.ShutdownGrace != "" {
		var err error
		if grace, err = time.ParseDuration(cfg.ShutdownGrace); err != nil {
			t.Errorf("%s: shutdown_grace: %v", configKey, err)
		}
	}
	graceS := int64((grace + time.Second - 1) / time.Second)
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < graceS+preStop {
		t.Errorf("terminationGracePeriodSeconds = %s, want at least %d (shutdown_grace %s + preStop %d s)", show(g), graceS+preStop, grace, preStop)
	}

	// Security context: the container's, falling back to the pod's.
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		t.Errorf("runAsNonRoot not set")
	}
	for _, uid := range []*int64{sc.RunAsUser, psc.RunAsUser} {
		if uid != nil && *uid == 0 {
			t.Errorf("runAsUser 0")
		}
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("readOnlyRootFilesystem not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation not false")
	}
	if isTrue(sc.Privileged) {
		t.Errorf("privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("pod shares a host namespace")
	}

	for _, r := range []struct {
		list corev1.ResourceList
		what string
		name corev1.ResourceName
	}{
		{c.Resources.Requests, "requests", corev1.ResourceCPU},
		{c.Resources.Requests, "requests", corev1.ResourceMemory},
		{c.Resources.Limits, "limits", corev1.ResourceMemory},
	} {
		if q, ok := r.list[r.name]; !ok || q.IsZero() {
			t.Errorf("no resources.%s.%s", r.what, r.name)
		}
	}
	for name, req := range c.Resources.Requests {
		if lim, ok := c.Resources.Limits[name]; ok && lim.Cmp(req) < 0 {
			t.Errorf("resources: %s limit %s below its request %s", name, lim.String(), req.String())
		}
	}

	// Every volume is mounted, and every mount but the config's is one of
	// the pod's own volumes (no hostPath).
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volumeMount %s: no such volume", m.Name)
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// show prints what p points to, or "unset".
func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// gatewayConfig is the part of beamgate.yaml the manifests depend on.
type gatewayConfig struct {
	Listen        string `json:"listen"`
	HostKey       string `json:"host_key"`
	ShutdownGrace string `json:"shutdown_grace"`
	Ops           struct {
		Listen string `json:"listen"`
	} `json:"ops"`
	Audit struct {
		Path string `json:"path"`
		Ship *struct {
			To string `json:"to"`
		} `json:"ship"`
	} `json:"audit"`
	Cookies struct {
		Backend string `json:"backend"`
		Vault   struct {
			Address string `json:"address"`
			Auth    struct {
				RoleIDFile   string `json:"role_id_file"`
				SecretIDFile string `json:"secret_id_file"`
			} `json:"auth"`
		} `json:"vault"`
	} `json:"cookies"`
	Roles map[string]struct {
		Policy string `json:"policy"`
	} `json:"roles"`
}

// Top-level keys of beamgate's configuration (gateway/config.Config). The test does not import beamgate, so this
// list is kept by hand: a key here that beamgate does not know would make
// it refuse to start.
var (
	requiredKeys = []string{"listen", "advertise", "host_key", "ops", "audit", "cookies", "clusters", "users", "roles"}
	knownKeys    = append([]string{"cookie_window", "engineer_epmd_port", "engineer_loopback", "user_ca_keys", "limits", "shutdown_grace"}, requiredKeys...)
)

// loadGatewayConfig returns the ConfigMap and its beamgate.yaml, decoded.
func loadGatewayConfig(t *testing.T, ms []manifest) (*corev1.ConfigMap, *gatewayConfig) {
	t.Helper()
	cm := only[corev1.ConfigMap](t, ms)
	text, ok := cm.Data[configKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", cm.Name, configKey)
	}
	js, err := yaml.YAMLToJSONStrict([]byte(text))
	if err != nil {
		t.Fatalf("ConfigMap %s: %s is not valid YAML: %v", cm.Name, configKey, err)
	}
	var top map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &top); err != nil {
		t.Fatalf("ConfigMap %s: %s is not a mapping: %v", cm.Name, configKey, err)
	}
	for _, k := range requiredKeys {
		if _, ok := top[k]; !ok {
			t.Errorf("%s: no top-level key %q", configKey, k)
		}
	}
	for k := range top {
		if !slices.Contains(knownKeys, k) {
			t.Errorf("%s: top-level key %q is not one of beamgate's (%v)", configKey, k, knownKeys)
		}
	}
	var cfg gatewayConfig
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &cfg); err != nil {
		t.Fatalf("%s: %v", configKey, err)
	}
	return cm, &cfg
}

// port returns the port of a host:port listen address, failing when it
// is not one.
func port(t *testing.T, key, addr string) (host string, port int32) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s %q: %v", key, addr, err)
		return "", 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Errorf("%s %q: port: %v", key, addr, err)
	}
	return h, int32(n)
}

// TestConfigMap checks beamgate.yaml against the Deployment that runs it:
// listeners on the container's ports (ops on the pod address, for the
// probes), files where the volumes and the Vault Agent put them, the audit
// log shipped to stdout, policy files present.
func TestConfigMap(t *testing.T) {
	ms := loadManifests(t)
	d := only[appsv1.Deployment](t, ms)
	c := container(t, d)
	cm, cfg := loadGatewayConfig(t, ms)

	if h, p := port(t, "listen", cfg.Listen); p != sshPort || !anyAddress(h) {
		t.Errorf("listen %q, want every address on the ssh port %d", cfg.Listen, sshPort)
	}
	if h, p := port(t, "ops.listen", cfg.Ops.Listen); p != opsPort || !anyAddress(h) {
		t.Errorf("ops.listen %q, want the pod address (0.0.0.0) on the ops port %d: probes and Prometheus cannot reach 127.0.0.1", cfg.Ops.Listen, opsPort)
	}
	if cfg.Cookies.Backend != "vault" {
		t.Errorf("cookies.backend %q, want vault", cfg.Cookies.Backend)
	}
	if cfg.Audit.Ship == nil || cfg.Audit.Ship.To != "stdout" {
		t.Errorf("audit.ship.to not stdout: the audit log lives on an emptyDir, the shipped copy is the durable one")
	}

	// The config volume: this ConfigMap, mounted read-only where --config points.
	pod := &d.Spec.Template.Spec
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	var cfgVol *corev1.ConfigMapVolumeSource
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			m, ok := mounts[v.Name]
			if !ok || m.MountPath != path.Dir(configFile) || !m.ReadOnly {
				t.Errorf("volume %s (ConfigMap %s) is not mounted read-only at %s", v.Name, cm.Name, path.Dir(configFile))
			}
			cfgVol = v.ConfigMap
		}
	}
	if cfgVol == nil {
		t.Fatalf("no volume of ConfigMap %s", cm.Name)
	}
	// Files the ConfigMap volume holds, by path under its mount.
	files := map[string]string{}
	if len(cfgVol.Items) == 0 {
		for k, v := range cm.Data {
			files[k] = v
		}
	}
	for _, it := range cfgVol.Items {
		v, ok := cm.Data[it.Key]
		if !ok {
			t.Errorf("config volume item %s: ConfigMap %s has no such key", it.Key, cm.Name)
		}
		files[it.Path] = v
	}
	if files[path.Base(configFile)] == "" {
		t.Errorf("config volume has no %s", path.Base(configFile))
	}
	for name, r := range cfg.Roles {
		p := r.Policy
		if !strings.ContainsRune(p, '/') && !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			continue // a built-in profile
		}
		rel := strings.TrimPrefix(p, path.Dir(configFile)+"/")
		text, ok := files[rel]
		if path.IsAbs(rel) || !ok {
			t.Errorf("roles.%s.policy %q: not a file of the config volume (%v)", name, p, keys(files))
			continue
		}
		var pol struct {
			Name string `json:"name"`
		}
		if err := yaml.Unmarshal([]byte(text), &pol); err != nil || pol.Name == "" {
			t.Errorf("roles.%s.policy %q: not a policy file with a name (%v)", name, p, err)
		}
	}

	// The audit log on a writable volume of the pod's own.
	if !underMount(cfg.Audit.Path, c.VolumeMounts, false) {
		t.Errorf("audit.path %q is on no writable volume mount (the root filesystem is read-only)", cfg.Audit.Path)
	}

	// Files the Vault Agent renders: each named by an annotation, 0400.
	ann := d.Spec.Template.Annotations
	if ann[vaultAnnotation+"agent-inject"] != "true" {
		t.Errorf("annotation %sagent-inject is not \"true\"", vaultAnnotation)
	}
	if ann[vaultAnnotation+"role"] == "" {
		t.Errorf("no annotation %srole", vaultAnnotation)
	}
	if svc, ok := ann[vaultAnnotation+"service"]; ok && svc != cfg.Cookies.Vault.Address {
		t.Errorf("annotation %sservice %q and cookies.vault.address %q name different Vaults", vaultAnnotation, svc, cfg.Cookies.Vault.Address)
	}
	rendered := renderedFiles(ann)
	for _, f := range []struct{ key, path string }{
		{"cookies.vault.auth.role_id_file", cfg.Cookies.Vault.Auth.RoleIDFile},
		{"cookies.vault.auth.secret_id_file", cfg.Cookies.Vault.Auth.SecretIDFile},
		{"host_key", cfg.HostKey},
	} {
		if !strings.HasPrefix(f.path, vaultSecrets) {
			t.Errorf("%s %q is not under %s", f.key, f.path, vaultSecrets)
			continue
		}
		name, ok := rendered[strings.TrimPrefix(f.path, vaultSecrets)]
		if !ok {
			t.Errorf("%s %q: no %sagent-inject-secret-NAME annotation renders it (rendered: %v)", f.key, f.path, vaultAnnotation, keys(rendered))
			continue
		}
		if ann[vaultAnnotation+"agent-inject-template-"+name] == "" {
			t.Errorf("%s: no %sagent-inject-template-%s", f.key, vaultAnnotation, name)
		}
		perms, err := strconv.ParseUint(ann[vaultAnnotation+"agent-inject-perms-"+name], 8, 32)
		if err != nil || perms&0o077 != 0 {
			t.Errorf("%s: %sagent-inject-perms-%s = %q; beamgate refuses a file group or others can read (want 0400)", f.key, vaultAnnotation, name, ann[vaultAnnotation+"agent-inject-perms-"+name])
		}
	}
	// The agent must write them as beamgate's user, or 0400 files are unreadable.
	if uid := ann[vaultAnnotation+"agent-run-as-user"]; ann[vaultAnnotation+"agent-run-as-same-user"] != "true" {
		want := d.Spec.Template.Spec.SecurityContext
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			want = &corev1.PodSecurityContext{RunAsUser: c.SecurityContext.RunAsUser}
		}
		if want == nil || want.RunAsUser == nil || uid != strconv.FormatInt(*want.RunAsUser, 10) {
			t.Errorf("annotation %sagent-run-as-user %q is not beamgate's runAsUser", vaultAnnotation, uid)
		}
	}
}

// renderedFiles maps each file the Vault Agent injector writes under
// /vault/secrets to its secret's annotation name.
func renderedFiles(ann map[string]string) map[string]string {
	const prefix = vaultAnnotation + "agent-inject-secret-"
	out := map[string]string{}
	for k := range ann {
		name, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		file := name
		if ann[vaultAnnotation+"preserve-secret-case"] != "true" {
			file = strings.ToLower(file) // as the injector does
		}
		if f, ok := ann[vaultAnnotation+"agent-inject-file-"+name]; ok {
			file = f
		}
		out[file] = name
	}
	return out
}

// underMount reports whether p lies under one of mounts (a writable one
// unless readOnly).
func underMount(p string, mounts []corev1.VolumeMount, readOnly bool) bool {
	for _, m := range mounts {
		if (readOnly || !m.ReadOnly) && strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

func anyAddress(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

func keys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// updateChecksum makes TestConfigChecksum write the annotation instead of
// checking it (make k8s-checksum).
var updateChecksum = flag.Bool("update-checksum", false, "write configmap.yaml's SHA-256 into deployment.yaml's checksum/config annotation")

// checksumLine is the annotation's line in deployment.yaml.
var checksumLine = regexp.MustCompile(`(?m)^(\s*checksum/config:[ \t]*).*$`)

// TestConfigChecksum checks the pod template's checksum/config annotation
// against configmap.yaml, so that a configuration change rolls the pods.
func TestConfigChecksum(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(manifestDir, "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if *updateChecksum {
		path := filepath.Join(manifestDir, "deployment.yaml")
		dep, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(checksumLine.FindAllIndex(dep, -1)); n != 1 {
			t.Fatalf("%s: %d checksum/config lines, want 1", path, n)
		}
		dep = checksumLine.ReplaceAll(dep, []byte(`${1}"`+want+`"`))
		if err := os.WriteFile(path, dep, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("checksum/config: %s", want)
	}
	d := only[appsv1.Deployment](t, loadManifests(t))
	if got := d.Spec.Template.Annotations["checksum/config"]; got != want {
		t.Errorf("checksum/config = %q, want %q (the SHA-256 of configmap.yaml); run make k8s-checksum", got, want)
	}
}

func TestService(t *testing.T) {
	ms := loadManifests(t)
	d := only[appsv1.Deployment](t, ms)
	c := container(t, d)
	l := podLabels(t, d)
	s := only[corev1.Service](t, ms)
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(l) {
		t.Errorf("Service %s: selector %v does not select the pods %v", s.Name, s.Spec.Selector, l)
	}
	ssh := false
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		switch containerPort(c, target) {
		case sshPort:
			ssh = p.Protocol == "" || p.Protocol == corev1.ProtocolTCP
		case opsPort:
			t.Errorf("Service %s exposes the ops port (port %d)", s.Name, p.Port)
		default:
			t.Errorf("Service %s: port %d targets %s, no port of the container", s.Name, p.Port, target.String())
		}
	}
	if !ssh {
		t.Errorf("Service %s: no TCP port to the ssh port %d", s.Name, sshPort)
	}
	if s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service %s: externalTrafficPolicy %q: engineers' addresses (audited, certificate source-address, the NetworkPolicy's CIDR) need Local", s.Name, s.Spec.ExternalTrafficPolicy)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	ms := loadManifests(t)
	l := podLabels(t, only[appsv1.Deployment](t, ms))
	pdb := only[policyv1.PodDisruptionBudget](t, ms)
	if m := pdb.Spec.MinAvailable; m == nil || m.Type != intstr.Int || m.IntVal != 1 {
		t.Errorf("PodDisruptionBudget %s: minAvailable %v, want 1", pdb.Name, m)
	}
	if pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget %s: both minAvailable and maxUnavailable", pdb.Name)
	}
	if !selects(t, pdb.Spec.Selector, l) {
		t.Errorf("PodDisruptionBudget %s: selector does not select the pods %v", pdb.Name, l)
	}
}

func TestNetworkPolicy(t *testing.T) {
	ms := loadManifests(t)
	l := podLabels(t, only[appsv1.Deployment](t, ms))
	np := only[networkingv1.NetworkPolicy](t, ms)
	if !selects(t, &np.Spec.PodSelector, l) {
		t.Errorf("NetworkPolicy %s: podSelector does not select the pods %v", np.Name, l)
	}
	for _, pt := range []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress} {
		if !slices.Contains(np.Spec.PolicyTypes, pt) {
			t.Errorf("NetworkPolicy %s: policyTypes %v lacks %s", np.Name, np.Spec.PolicyTypes, pt)
		}
	}

	// Egress: only epmd, the distribution range, Vault and DNS, each rule
	// to named destinations.
	allowed := []policyRange{
		{corev1.ProtocolTCP, epmdPort, epmdPort},
		{corev1.ProtocolTCP, distMin, distMax},
		{corev1.ProtocolTCP, vaultPort, vaultPort},
		{corev1.ProtocolUDP, dnsPort, dnsPort},
		{corev1.ProtocolTCP, dnsPort, dnsPort},
	}
	required := allowed[:4] // DNS over TCP is optional
	var seen []policyRange
	for i, r := range np.Spec.Egress {
		if len(r.To) == 0 {
			t.Errorf("egress rule %d: no to: it reaches every destination", i)
		}
		if len(r.Ports) == 0 {
			t.Errorf("egress rule %d: no ports: it reaches every port", i)
		}
		for _, p := range r.Ports {
			pr, ok := policyPort(p)
			if !ok {
				t.Errorf("egress rule %d: port %v is not a number (or range) of its own", i, p)
				continue
			}
			got := pr
			if !slices.Contains(allowed, got) {
				t.Errorf("egress rule %d: %s is not one of epmd %d, the distribution range %d-%d, Vault %d or DNS %d", i, got, epmdPort, distMin, distMax, vaultPort, dnsPort)
			}
			seen = append(seen, got)
		}
	}
	for _, want := range required {
		if !slices.Contains(seen, want) {
			t.Errorf("egress allows no %s", want)
		}
	}

	// Ingress: SSH, and the ops port from the monitoring namespace only.
	ssh := false
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			t.Errorf("ingress rule %d: no ports: every port of the pod is open", i)
		}
		for _, p := range r.Ports {
			pr, ok := policyPort(p)
			if !ok || pr.first != pr.end || pr.proto != corev1.ProtocolTCP {
				t.Errorf("ingress rule %d: port %v, want single TCP ports", i, p)
				continue
			}
			switch pr.first {
			case sshPort:
				ssh = ssh || len(r.From) > 0
			case opsPort:
				for _, peer := range r.From {
					if peer.IPBlock != nil || peer.NamespaceSelector == nil ||
						peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != monitoringNS {
						t.Errorf("ingress rule %d: the ops port is open to %+v, want the %s namespace only", i, peer, monitoringNS)
					}
				}
				if len(r.From) == 0 {
					t.Errorf("ingress rule %d: the ops port is open to everyone", i)
				}
			default:
				t.Errorf("ingress rule %d: port %d is neither ssh %d nor ops %d", i, pr.first, sshPort, opsPort)
			}
		}
	}
	if !ssh {
		t.Errorf("no ingress rule admits SSH (port %d) from a named source", sshPort)
	}
}

type policyRange struct {
	proto      corev1.Protocol
	first, end int32
}

func (r policyRange) String() string {
	if r.first == r.end {
		return fmt.Sprintf("%s %d", r.proto, r.first)
	}
	return fmt.Sprintf("%s %d-%d", r.proto, r.first, r.end)
}

// policyPort returns p as a protocol and a port range, and false when p
// names a port by name or leaves it out (every port).
func policyPort(p networkingv1.NetworkPolicyPort) (policyRange, bool) {
	proto := corev1.ProtocolTCP
	if p.Protocol != nil {
		proto = *p.Protocol
	}
	if p.Port == nil || p.Port.Type != intstr.Int {
		return policyRange{}, false
	}
	r := policyRange{proto, p.Port.IntVal, p.Port.IntVal}
	if p.EndPort != nil {
		r.end = *p.EndPort
	}
	return r, r.end >= r.first
}
