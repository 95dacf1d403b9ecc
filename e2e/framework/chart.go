package framework

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// ChartDir is the Helm chart's directory.
func ChartDir() string { return filepath.Join(RepoRoot(), "manifests", "charts", "sluice") }

// Helm runs bin/helm and returns its standard output; a failure carries its
// standard error.
func Helm(args ...string) (string, error) {
	bin := filepath.Join(BinDir(), "helm")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is missing: run `make tools`", bin)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// RenderChart renders the chart (`helm template`) as release in namespace,
// with each of set passed as --set, and returns its objects.
func RenderChart(release, namespace string, set ...string) ([]*unstructured.Unstructured, error) {
	out, err := Helm(append([]string{"template", release, ChartDir(), "--namespace", namespace}, SetArgs(set)...)...)
	if err != nil {
		return nil, err
	}
	return DecodeObjects(strings.NewReader(out))
}

// SetArgs turns key=value pairs into helm's --set arguments.
func SetArgs(set []string) []string {
	var args []string
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// DecodeObjects reads a multi-document YAML stream into objects, skipping
// empty documents.
func DecodeObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// ModuleDir downloads a Go module through the module proxy (or finds it in
// the module cache) and returns its directory. Tests use it for files other
// projects ship in their modules, such as cert-manager's CRDs.
func ModuleDir(module, version string) (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", module+"@"+version).Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Error != "" || err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %v %s %v", module, version, err, info.Error, jerr)
	}
	return info.Dir, nil
}

// ReadObjects decodes every YAML file matching glob.
func ReadObjects(glob string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no files match %s (%v)", glob, err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		o, err := DecodeObjects(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// cert-manager's release whose CRDs the chart's certManager mode is checked
// against (its Go module ships them).
const (
	CertManagerModule  = "github.com/cert-manager/cert-manager"
	CertManagerVersion = "v1.21.2"
)

// CertManagerCRDs returns cert-manager's CustomResourceDefinitions, from its
// Go module.
func CertManagerCRDs() ([]*unstructured.Unstructured, error) {
	dir, err := ModuleDir(CertManagerModule, CertManagerVersion)
	if err != nil {
		return nil, err
	}
	return ReadObjects(dir + "/deploy/crds/*.yaml")
}

// ChartWebhookConfigurations renders the chart's webhook configurations for
// release in namespace: the one registration of sluice's webhooks, which
// envtest points at its local webhook server (it replaces each Service
// reference by a URL on that server and fills in the CA).
func ChartWebhookConfigurations(release, namespace string, set ...string) (*admissionregv1.MutatingWebhookConfiguration, *admissionregv1.ValidatingWebhookConfiguration, error) {
	objs, err := RenderChart(release, namespace, set...)
	if err != nil {
		return nil, nil, err
	}
	var (
		mutating   *admissionregv1.MutatingWebhookConfiguration
		validating *admissionregv1.ValidatingWebhookConfiguration
	)
	for _, o := range objs {
		var into any
		switch o.GetKind() {
		case "MutatingWebhookConfiguration":
			mutating = &admissionregv1.MutatingWebhookConfiguration{}
			into = mutating
		case "ValidatingWebhookConfiguration":
			validating = &admissionregv1.ValidatingWebhookConfiguration{}
			into = validating
		default:
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
			return nil, nil, fmt.Errorf("the chart's %s: %w", o.GetKind(), err)
		}
	}
	if mutating == nil || validating == nil {
		return nil, nil, errors.New("the chart rendered no mutating or no validating webhook configuration")
	}
	return mutating, validating, nil
}
