package manifesttest

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// manifestDir is the directory of the manifests: deploy/kubernetes, the
// one above this module, unless -manifests names another (a copy to try a
// change on).
var manifestDir = ".."

func init() {
	flag.StringVar(&manifestDir, "manifests", manifestDir, "directory of the manifests to check")
}

// kustomizationFile is kustomize's own file, not a Kubernetes object: it
// is decoded into kustomization below.
const kustomizationFile = "kustomization.yaml"

// kinds maps "apiVersion kind" to a new typed object of that kind. A
// document of any other kind fails the test: add it here (and its checks)
// when a manifest needs one.
var kinds = map[string]func() any{
	"apps/v1 Deployment":                 func() any { return new(appsv1.Deployment) },
	"v1 Service":                         func() any { return new(corev1.Service) },
	"policy/v1 PodDisruptionBudget":      func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1 NetworkPolicy": func() any { return new(networkingv1.NetworkPolicy) },
	"v1 ConfigMap":                       func() any { return new(corev1.ConfigMap) },
	"v1 ServiceAccount":                  func() any { return new(corev1.ServiceAccount) },
}

// manifest is one decoded document of a manifest file.
type manifest struct {
	file string // base name, in manifestDir
	doc  int    // 1-based position among the file's documents
	gvk  string // "apiVersion kind"
	obj  any    // the typed object (a pointer), decoded strictly
}

func (m manifest) String() string { return fmt.Sprintf("%s (document %d, %s)", m.file, m.doc, m.gvk) }

// kustomization is the part of kustomize's Kustomization this directory
// uses; decoding it strictly makes any other field an error here, so that
// a field added to kustomization.yaml is added (and checked) here too.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
}

// decodeStrict decodes one YAML document into v as the API server's strict
// field validation does: duplicate keys, unknown fields and fields that
// match only case-insensitively are errors (encoding/json alone would
// accept "Replicas" for "replicas").
func decodeStrict(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeManifest decodes one document into the typed object its apiVersion
// and kind name, strictly. An unknown kind is an error.
func decodeManifest(doc []byte) (gvk string, obj any, err error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return "", nil, err
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return "", nil, err
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return "", nil, errors.New("no apiVersion or kind")
	}
	gvk = tm.APIVersion + " " + tm.Kind
	newObj, ok := kinds[gvk]
	if !ok {
		known := make([]string, 0, len(kinds))
		for k := range kinds {
			known = append(known, k)
		}
		sort.Strings(known)
		return gvk, nil, fmt.Errorf("unknown kind %q; the test knows %s", gvk, strings.Join(known, ", "))
	}
	obj = newObj()
	if err := decodeStrict(doc, obj); err != nil {
		return gvk, nil, err
	}
	return gvk, obj, nil
}

// splitDocuments splits a YAML stream at its "---" lines and drops
// documents holding only comments and blank lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	content := false
	flush := func() {
		if content {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
		content = false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimRight(line, " \t"); trimmed == "---" || strings.HasPrefix(trimmed, "--- ") {
			flush()
			continue
		}
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			content = true
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

// manifestFiles lists the YAML files in manifestDir, sorted.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(manifestDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no *.yaml in %s", manifestDir)
	}
	return files
}

// loadManifests decodes every document of every manifest file but the
// kustomization, failing the test on any error.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var ms []manifest
	for _, path := range manifestFiles(t) {
		name := filepath.Base(path)
		if name == kustomizationFile {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocuments(data)
		if len(docs) == 0 {
			t.Errorf("%s: no document", name)
		}
		for i, doc := range docs {
			gvk, obj, err := decodeManifest(doc)
			if err != nil {
				t.Errorf("%s (document %d): %v", name, i+1, err)
				continue
			}
			ms = append(ms, manifest{file: name, doc: i + 1, gvk: gvk, obj: obj})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return ms
}

// only returns the one object of type T among ms.
func only[T any](t *testing.T, ms []manifest) *T {
	t.Helper()
	var found []*T
	for _, m := range ms {
		if o, ok := m.obj.(*T); ok {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("found %d %T objects, want exactly 1", len(found), *new(T))
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	ms := loadManifests(t)
	seen := map[string]bool{}
	for _, m := range ms {
		t.Logf("ok %s", m)
		seen[m.gvk] = true
		meta := objectMeta(m.obj)
		if meta.Name == "" {
			t.Errorf("%s: no metadata.name", m)
		}
		if meta.Namespace != "" {
			t.Errorf("%s: metadata.namespace %q; leave it to kustomization.yaml's namespace", m, meta.Namespace)
		}
	}
	for gvk := range kinds {
		if !seen[gvk] {
			t.Errorf("no %s in %s", gvk, manifestDir)
		}
	}
}

// objectMeta returns obj's metadata.
func objectMeta(obj any) metav1.ObjectMeta {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.ObjectMeta
	case *corev1.Service:
		return o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return o.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return o.ObjectMeta
	case *corev1.ConfigMap:
		return o.ObjectMeta
	case *corev1.ServiceAccount:
		return o.ObjectMeta
	}
	panic(fmt.Sprintf("objectMeta: %T", obj))
}

// TestStrictDecodingRejects checks the checker: what a lenient decoder
// would let through is refused.
func TestStrictDecodingRejects(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicaz: 2\n", `unknown field "spec.replicaz"`},
		{"misspelt nested field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 22, targetPort: 2222, protocl: TCP}]\n", `unknown field "spec.ports[0].protocl"`},
		{"field in the wrong case", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  Replicas: 2\n", `unknown field "spec.Replicas"`},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n", `already set in map`},
		{"wrong type", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {minAvailable: [1]}\n", `cannot unmarshal`},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", `unknown kind "v1 Pod"`},
		{"kind under another group", "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: x}\n", `unknown kind "extensions/v1beta1 Deployment"`},
		{"no kind", "metadata: {name: x}\n", `no apiVersion or kind`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeManifest([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodeManifest = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	in := "# header only\n---\na: 1\n---   \n# comment\nb: 2\n--- # trailing\n\n"
	got := splitDocuments([]byte(in))
	want := []string{"a: 1\n", "# comment\nb: 2\n"}
	if len(got) != len(want) {
		t.Fatalf("splitDocuments = %q, want %q", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("document %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestKustomization decodes kustomization.yaml strictly and checks that it
// lists every manifest file exactly once, and nothing else.
func TestKustomization(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(manifestDir, kustomizationFile))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("%s: %v", kustomizationFile, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s: apiVersion/kind = %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", kustomizationFile, k.APIVersion, k.Kind)
	}
	if k.Namespace == "" {
		t.Errorf("%s: no namespace", kustomizationFile)
	}
	var want []string
	for _, f := range manifestFiles(t) {
		if b := filepath.Base(f); b != kustomizationFile {
			want = append(want, b)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("%s: resources = %v, want every manifest file once: %v", kustomizationFile, got, want)
	}
	d := only[appsv1.Deployment](t, loadManifests(t))
	for _, img := range k.Images {
		found := false
		for _, c := range d.Spec.Template.Spec.Containers {
			found = found || imageName(c.Image) == img.Name
		}
		if !found {
			t.Errorf("%s: images entry %q matches no container image of the Deployment", kustomizationFile, img.Name)
		}
	}
}

// imageName is image without its tag or digest.
func imageName(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}
