// Command decode checks the output of `helm template` (multi-document YAML on stdin) the way the
// API server would take it: every object must decode strictly into its Kubernetes Go type (no
// unknown or duplicate field, no wrong type), and the objects must fit together (selectors match
// the pods, named ports exist, mounted volumes and Secret keys exist). It fails with the object's
// kind/name and the error.
//
//	helm template ... | decode [-flat FILE]
//
// -flat writes one line per scalar, "Kind/name path=value", for tests/helm/run.sh to grep. A
// ConfigMap's *.yaml and *.json values and a Secret's values are parsed (decoded) and continue
// the path after ">", e.g. ConfigMap/ecrm data["ecrm.yaml"]>kafka_properties["sasl.mechanism"]=...
//
// Types: k8s.io/api for the core kinds; ServiceMonitor and PrometheusRule from the Prometheus
// operator's own API module (github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring).
// Strictness is that of the API server: sigs.k8s.io/json's UnmarshalStrict (case-sensitive field
// names, unknown and duplicate fields are errors) after sigs.k8s.io/yaml's YAMLToJSONStrict.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The kinds a chart may render, by apiVersion and kind.
var kinds = map[string]func() runtime.Object{
	"v1/ConfigMap":                            func() runtime.Object { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() runtime.Object { return &corev1.Secret{} },
	"v1/Service":                              func() runtime.Object { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() runtime.Object { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":                func() runtime.Object { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/StatefulSet":                     func() runtime.Object { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                      func() runtime.Object { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() runtime.Object { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":            func() runtime.Object { return &networkingv1.Ingress{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() runtime.Object { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() runtime.Object { return &monitoringv1.PrometheusRule{} },
}

// object is one decoded document.
type object struct {
	id   string // Kind/name
	obj  runtime.Object
	meta metav1.ObjectMeta
	tree any // the document as generic JSON, for -flat
}

func main() {
	flatPath := flag.String("flat", "", "write the flattened objects to this file")
	flag.Parse()
	objects, errs := decodeAll(os.Stdin)
	if len(errs) == 0 { // with an object missing, the cross-checks would only echo its error
		errs = checkAll(objects)
	}
	if *flatPath != "" {
		if err := writeFlat(*flatPath, objects); err != nil {
			errs = append(errs, err)
		}
	}
	for _, err := range errs {
		fmt.Fprintln(os.Stderr, "decode:", err)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
	fmt.Printf("decode: %d objects decoded strictly and consistent\n", len(objects))
}

func decodeAll(in io.Reader) ([]*object, []error) {
	var objects []*object
	var errs []error
	seen := map[string]bool{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return objects, append(errs, fmt.Errorf("document %d: %w", n, err))
		}
		if isEmpty(doc) {
			continue
		}
		o, err := decodeOne(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", n, err))
			continue
		}
		if seen[o.id] {
			errs = append(errs, fmt.Errorf("%s: rendered twice", o.id))
		}
		seen[o.id] = true
		objects = append(objects, o)
	}
	if len(objects) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no object on stdin"))
	}
	return objects, errs
}

// isEmpty: a document of comments and blank lines only (helm leaves them for empty templates).
func isEmpty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			return false
		}
	}
	return true
}

func decodeOne(doc []byte) (*object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &head); err != nil {
		return nil, fmt.Errorf("not an object: %w", err)
	}
	id := head.Kind + "/" + head.Metadata.Name
	newObj, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: unknown apiVersion/kind %s/%s", id, head.APIVersion, head.Kind)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s: %s", id, strings.Join(msgs, "; "))
	}
	accessor, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%s: has no metadata", id)
	}
	var tree any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tree); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	meta := metav1.ObjectMeta{Name: accessor.GetName(), Namespace: accessor.GetNamespace(),
		Labels: accessor.GetLabels(), Annotations: accessor.GetAnnotations()}
	return &object{id: id, obj: obj, meta: meta, tree: tree}, nil
}
