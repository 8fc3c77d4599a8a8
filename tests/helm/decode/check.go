package main

import (
	"fmt"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// The API server's limit on a ConfigMap's or Secret's data.
const maxDataBytes = 1 << 20

// workload is a pod template with the object that owns it.
type workload struct {
	id       string
	template *corev1.PodTemplateSpec
}

// checkAll checks what the API server and the kubelet would refuse, or what would render but not
// work: names, labels, references between the objects.
func checkAll(objects []*object) []error {
	var errs []error
	fail := func(id, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", id, fmt.Sprintf(format, args...)))
	}
	configMaps := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	services := map[string]*corev1.Service{}
	var workloads []workload
	for _, o := range objects {
		checkMeta(o, fail)
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			configMaps[v.Name] = v
			size := 0
			for k, d := range v.Data {
				size += len(k) + len(d)
				for _, msg := range validation.IsConfigMapKey(k) {
					fail(o.id, "data key %q: %s", k, msg)
				}
				if strings.HasSuffix(k, ".yaml") || strings.HasSuffix(k, ".yml") || strings.HasSuffix(k, ".json") {
					if _, err := yaml.YAMLToJSONStrict([]byte(d)); err != nil {
						fail(o.id, "data key %q is not valid YAML/JSON: %v", k, err)
					}
				}
			}
			if size > maxDataBytes {
				fail(o.id, "data is %d bytes, more than the API server's 1 MiB", size)
			}
		case *corev1.Secret:
			secrets[v.Name] = v
			for k := range v.Data {
				for _, msg := range validation.IsConfigMapKey(k) {
					fail(o.id, "data key %q: %s", k, msg)
				}
			}
		case *corev1.Service:
			services[v.Name] = v
			for _, msg := range validation.IsDNS1035Label(v.Name) {
				fail(o.id, "a Service name must be a DNS label: %s", msg)
			}
		case *appsv1.StatefulSet:
			workloads = append(workloads, workload{o.id, &v.Spec.Template})
			checkSelector(o.id, v.Spec.Selector, v.Spec.Template.Labels, fail)
		case *appsv1.Deployment:
			workloads = append(workloads, workload{o.id, &v.Spec.Template})
			checkSelector(o.id, v.Spec.Selector, v.Spec.Template.Labels, fail)
		}
	}
	for _, o := range objects {
		switch v := o.obj.(type) {
		case *appsv1.StatefulSet:
			checkStatefulSet(o.id, v, services, fail)
			checkPod(o.id, &v.Spec.Template.Spec, v.Spec.VolumeClaimTemplates, configMaps, secrets, fail)
		case *appsv1.Deployment:
			checkPod(o.id, &v.Spec.Template.Spec, nil, configMaps, secrets, fail)
		case *corev1.Service:
			checkService(o.id, v, workloads, fail)
		case *policyv1.PodDisruptionBudget:
			if matchesNone(v.Spec.Selector, workloads) {
				fail(o.id, "its selector matches no pod template")
			}
		case *monitoringv1.ServiceMonitor:
			checkServiceMonitor(o.id, v, services, fail)
		case *monitoringv1.PrometheusRule:
			checkPrometheusRule(o.id, v, fail)
		}
	}
	return errs
}

type failer func(id, format string, args ...any)

func checkMeta(o *object, fail failer) {
	if o.meta.Name == "" {
		fail(o.id, "no metadata.name")
	}
	for _, msg := range validation.IsDNS1123Subdomain(o.meta.Name) {
		fail(o.id, "metadata.name: %s", msg)
	}
	if o.meta.Namespace == "" {
		fail(o.id, "no metadata.namespace (a chart's objects should name the release's)")
	}
	checkLabels(o.id, "metadata.labels", o.meta.Labels, fail)
	for k := range o.meta.Annotations {
		for _, msg := range validation.IsQualifiedName(k) {
			fail(o.id, "annotation %q: %s", k, msg)
		}
	}
}

func checkLabels(id, where string, l map[string]string, fail failer) {
	for k, v := range l {
		for _, msg := range validation.IsQualifiedName(k) {
			fail(id, "%s key %q: %s", where, k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			fail(id, "%s %q value %q: %s", where, k, v, msg)
		}
	}
}

func checkSelector(id string, sel *metav1.LabelSelector, podLabels map[string]string, fail failer) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || sel == nil || s.Empty() {
		fail(id, "spec.selector is missing or invalid (%v)", err)
		return
	}
	if !s.Matches(labels.Set(podLabels)) {
		fail(id, "spec.selector %s does not match the pod template's labels %v", s, podLabels)
	}
}

func matchesNone(sel *metav1.LabelSelector, workloads []workload) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return true
	}
	for _, w := range workloads {
		if s.Matches(labels.Set(w.template.Labels)) {
			return false
		}
	}
	return true
}

func checkStatefulSet(id string, s *appsv1.StatefulSet, services map[string]*corev1.Service, fail failer) {
	if len(s.Name) > 52 {
		fail(id, "a StatefulSet name longer than 52 characters breaks its pods' controller-revision-hash label")
	}
	svc, ok := services[s.Spec.ServiceName]
	switch {
	case s.Spec.ServiceName == "":
		fail(id, "spec.serviceName is empty")
	case !ok:
		fail(id, "spec.serviceName %q is not a rendered Service", s.Spec.ServiceName)
	case svc.Spec.ClusterIP != corev1.ClusterIPNone:
		fail(id, "spec.serviceName %q is not a headless Service (clusterIP: None)", s.Spec.ServiceName)
	}
	for _, t := range s.Spec.VolumeClaimTemplates {
		if _, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
			fail(id, "volumeClaimTemplate %s requests no storage", t.Name)
		}
	}
}

func checkPod(id string, pod *corev1.PodSpec, claims []corev1.PersistentVolumeClaim,
	configMaps map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret, fail failer) {
	volumes := map[string]bool{}
	for _, c := range claims {
		volumes[c.Name] = true
	}
	for _, v := range pod.Volumes {
		if volumes[v.Name] {
			fail(id, "volume %q is defined twice", v.Name)
		}
		volumes[v.Name] = true
		if v.ConfigMap != nil {
			cm, ok := configMaps[v.ConfigMap.Name]
			if !ok && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
				fail(id, "volume %q: ConfigMap %q is not rendered", v.Name, v.ConfigMap.Name)
			}
			for _, item := range v.ConfigMap.Items {
				if _, has := cm.Data[item.Key]; ok && !has {
					fail(id, "volume %q: ConfigMap %q has no key %q", v.Name, v.ConfigMap.Name, item.Key)
				}
			}
		}
		if v.Secret != nil {
			// A Secret the chart does not render (existingSecret) is the operator's to fill.
			if s, ok := secrets[v.Secret.SecretName]; ok {
				for _, item := range v.Secret.Items {
					if _, has := s.Data[item.Key]; !has {
						fail(id, "volume %q: Secret %q has no key %q", v.Name, s.Name, item.Key)
					}
				}
			}
		}
	}
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		cid := id + " container " + c.Name
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			fail(cid, "name: %s", msg)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			for _, msg := range validation.IsValidPortName(p.Name) {
				fail(cid, "port name %q: %s", p.Name, msg)
			}
			ports[p.Name] = true
		}
		for what, probe := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe,
			"readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if probe != nil && probe.HTTPGet != nil && probe.HTTPGet.Port.Type == intstr.String &&
				!ports[probe.HTTPGet.Port.StrVal] {
				fail(cid, "%s: no container port named %q", what, probe.HTTPGet.Port.StrVal)
			}
		}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				fail(cid, "env %q: %s", e.Name, msg)
			}
		}
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				fail(cid, "volumeMount %q: no such volume", m.Name)
			}
			if mounts[m.MountPath] {
				fail(cid, "two volumeMounts at %s", m.MountPath)
			}
			mounts[m.MountPath] = true
		}
		if c.Image == "" {
			fail(cid, "no image")
		}
	}
}

func checkService(id string, s *corev1.Service, workloads []workload, fail failer) {
	if len(s.Spec.Selector) == 0 {
		return
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	for _, w := range workloads {
		if !sel.Matches(labels.Set(w.template.Labels)) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type != intstr.String {
				continue
			}
			found := false
			for _, c := range w.template.Spec.Containers {
				for _, cp := range c.Ports {
					found = found || cp.Name == p.TargetPort.StrVal
				}
			}
			if !found {
				fail(id, "port %q: targetPort %q is no container port of %s", p.Name, p.TargetPort.StrVal, w.id)
			}
		}
		return
	}
	fail(id, "its selector %v matches no pod template", s.Spec.Selector)
}

func checkServiceMonitor(id string, m *monitoringv1.ServiceMonitor, services map[string]*corev1.Service, fail failer) {
	sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
	if err != nil {
		fail(id, "spec.selector: %v", err)
		return
	}
	var matched []*corev1.Service
	for _, s := range services {
		if sel.Matches(labels.Set(s.Labels)) {
			matched = append(matched, s)
		}
	}
	if len(matched) != 1 {
		fail(id, "spec.selector matches %d rendered Services, want exactly 1 (else each pod is scraped more than once)", len(matched))
	}
	for _, e := range m.Spec.Endpoints {
		for _, s := range matched {
			found := false
			for _, p := range s.Spec.Ports {
				found = found || p.Name == e.Port
			}
			if !found {
				fail(id, "endpoint port %q is no port of Service %s", e.Port, s.Name)
			}
		}
	}
}

func checkPrometheusRule(id string, r *monitoringv1.PrometheusRule, fail failer) {
	if len(r.Spec.Groups) == 0 {
		fail(id, "no rule group")
	}
	for _, g := range r.Spec.Groups {
		if len(g.Rules) == 0 {
			fail(id, "group %q has no rule", g.Name)
		}
		for i, rule := range g.Rules {
			if (rule.Alert == "") == (rule.Record == "") {
				fail(id, "group %q rule %d: needs exactly one of alert and record", g.Name, i)
			}
			if strings.TrimSpace(rule.Expr.String()) == "" {
				fail(id, "group %q rule %d: empty expr", g.Name, i)
			}
		}
	}
}
