package kfp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/kfp/task"
)

// platform applies the executor's kfp-kubernetes settings to the Job.
func (c *converter) platform(s *step, job *batchv1.Job) error {
	if c.p.Platform == nil {
		return nil
	}
	k := c.p.Platform.Platforms.Kubernetes.DeploymentSpec.Executors[s.label]
	if k == nil {
		return nil
	}
	pw := &podWriter{c: c, s: s, meta: &job.Spec.Template.ObjectMeta, pod: &job.Spec.Template.Spec}
	pw.ctr = &pw.pod.Containers[0]
	for _, apply := range []func(*KubernetesExecutor) error{pw.env, pw.volumes, pw.scheduling, pw.podSettings} {
		if err := apply(k); err != nil {
			return err
		}
	}
	return nil
}

// podWriter writes one step's platform settings into its pod template.
type podWriter struct {
	c    *converter
	s    *step
	meta *metav1.ObjectMeta
	pod  *corev1.PodSpec
	ctr  *corev1.Container
}

// name gives a setting's object name; "" when it is read from an optional
// pipeline input left unset: KFP then leaves the setting out.
func (pw *podWriter) name(what, constant string, in *ParameterInput) (string, error) {
	if in == nil || constant != "" && in.RuntimeValue != nil {
		return constant, nil
	}
	v, err := pw.c.platformParam(pw.s, what, in)
	if err != nil || v == nil {
		return "", err
	}
	str, ok := v.(string)
	if !ok || str == "" {
		return "", fmt.Errorf("%s: expected a name, got %s", what, task.Describe(v))
	}
	return str, nil
}

// addVolume adds a volume and mounts it in the main container.
func (pw *podWriter) addVolume(v corev1.Volume, mountPath string) error {
	if !strings.HasPrefix(mountPath, "/") {
		return fmt.Errorf("volume %s: mount path %q is not absolute", v.Name, mountPath)
	}
	if strings.HasPrefix(mountPath, "/sluice/") || mountPath == "/sluice" {
		return fmt.Errorf("volume %s: mount path %s is sluice's own (run volume and launcher)", v.Name, mountPath)
	}
	for _, have := range pw.pod.Volumes {
		if have.Name == v.Name {
			return fmt.Errorf("volume %s is mounted twice", v.Name)
		}
	}
	pw.pod.Volumes = append(pw.pod.Volumes, v)
	pw.ctr.VolumeMounts = append(pw.ctr.VolumeMounts, corev1.VolumeMount{Name: v.Name, MountPath: mountPath})
	return nil
}

// env: secrets, config maps and the pod's own fields as environment variables.
func (pw *podWriter) env(k *KubernetesExecutor) error {
	for _, se := range k.SecretAsEnv {
		sn, err := pw.name("secret name", se.SecretName, se.SecretNameParameter)
		if err != nil {
			return err
		}
		if sn == "" {
			continue
		}
		for _, kv := range se.KeyToEnv {
			pw.ctr.Env = append(pw.ctr.Env, corev1.EnvVar{Name: kv.EnvVar, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: sn}, Key: kv.SecretKey, Optional: optional(se.Optional)}}})
		}
	}
	for _, cm := range k.ConfigMapAsEnv {
		n, err := pw.name("config map name", cm.ConfigMapName, cm.ConfigMapNameParameter)
		if err != nil {
			return err
		}
		if n == "" {
			continue
		}
		for _, kv := range cm.KeyToEnv {
			pw.ctr.Env = append(pw.ctr.Env, corev1.EnvVar{Name: kv.EnvVar, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: n}, Key: kv.ConfigMapKey, Optional: optional(cm.Optional)}}})
		}
	}
	for _, f := range k.FieldPathAsEnv {
		pw.ctr.Env = append(pw.ctr.Env, corev1.EnvVar{Name: f.Name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: f.FieldPath}}})
	}
	return nil
}

// volumes: secrets, config maps, claims, empty dirs and ephemeral volumes, mounted.
func (pw *podWriter) volumes(k *KubernetesExecutor) error {
	volName := func(kind, of string) string { return DNSName(kind + "-" + of) }
	for _, sv := range k.SecretAsVolume {
		sn, err := pw.name("secret name", sv.SecretName, sv.SecretNameParameter)
		if err != nil {
			return err
		}
		if sn == "" {
			continue
		}
		v := corev1.Volume{Name: volName("secret", sn), VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: sn, Optional: optional(sv.Optional)}}}
		if err := pw.addVolume(v, sv.MountPath); err != nil {
			return err
		}
	}
	for _, cv := range k.ConfigMapAsVolume {
		n, err := pw.name("config map name", cv.ConfigMapName, cv.ConfigMapNameParameter)
		if err != nil {
			return err
		}
		if n == "" {
			continue
		}
		v := corev1.Volume{Name: volName("config-map", n), VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: n}, Optional: optional(cv.Optional)}}}
		if err := pw.addVolume(v, cv.MountPath); err != nil {
			return err
		}
	}
	for _, m := range k.PVCMount {
		in := m.PVCNameParameter
		switch {
		case in != nil:
		case m.TaskOutputParameter != nil:
			in = &ParameterInput{TaskOutputParameter: m.TaskOutputParameter}
		case m.ComponentInputParameter != "":
			in = &ParameterInput{ComponentInputParameter: m.ComponentInputParameter}
		}
		claim, err := pw.name("claim name", m.Constant, in)
		if err != nil {
			return err
		}
		if claim == "" {
			continue
		}
		v := corev1.Volume{Name: volName("pvc", claim), VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
		if err := pw.addVolume(v, m.MountPath); err != nil {
			return err
		}
	}
	for _, e := range k.EmptyDirMounts {
		src := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMedium(e.Medium)}
		if e.SizeLimit != "" {
			q, err := resource.ParseQuantity(e.SizeLimit)
			if err != nil {
				return fmt.Errorf("empty dir %s: size limit %q is not a quantity", e.VolumeName, e.SizeLimit)
			}
			src.SizeLimit = &q
		}
		if err := pw.addVolume(corev1.Volume{Name: e.VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: src}}, e.MountPath); err != nil {
			return err
		}
	}
	for _, raw := range k.GenericEphemeralVolume {
		v, mountPath, err := ephemeralVolume(raw)
		if err != nil {
			return err
		}
		if err := pw.addVolume(v, mountPath); err != nil {
			return err
		}
	}
	return nil
}

// scheduling: node selector, tolerations and node affinity.
func (pw *podWriter) scheduling(k *KubernetesExecutor) error {
	if ns := k.NodeSelector; ns != nil {
		labels := ns.Labels
		if ns.NodeSelectorJSON != nil {
			v, err := pw.c.platformParam(pw.s, "node selector", ns.NodeSelectorJSON)
			if err != nil {
				return err
			}
			labels = nil
			if v != nil {
				if err := remarshal(v, &labels); err != nil {
					return fmt.Errorf("node selector: expected an object of label values: %w", err)
				}
			}
		}
		for _, key := range slices.Sorted(maps.Keys(labels)) {
			if pw.pod.NodeSelector == nil {
				pw.pod.NodeSelector = map[string]string{}
			}
			pw.pod.NodeSelector[key] = labels[key]
		}
	}
	for _, t := range k.Tolerations {
		tol, ok, err := pw.toleration(t)
		if err != nil {
			return err
		}
		if ok {
			pw.pod.Tolerations = append(pw.pod.Tolerations, tol)
		}
	}
	for _, na := range k.NodeAffinity {
		if err := pw.c.nodeAffinity(pw.s, pw.pod, na); err != nil {
			return err
		}
	}
	return nil
}

// toleration reads one toleration; not ok when it comes from an optional
// pipeline input left unset.
func (pw *podWriter) toleration(t Toleration) (corev1.Toleration, bool, error) {
	if t.TolerationJSON != nil {
		v, err := pw.c.platformParam(pw.s, "toleration", t.TolerationJSON)
		if err != nil || v == nil {
			return corev1.Toleration{}, false, err
		}
		var tol corev1.Toleration
		if err := remarshal(v, &tol); err != nil {
			return corev1.Toleration{}, false, fmt.Errorf("toleration: %w", err)
		}
		return tol, true, nil
	}
	tol := corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
	if t.TolerationSeconds != nil {
		n, err := strconv.ParseInt(task.Format(t.TolerationSeconds), 10, 64)
		if err != nil {
			return corev1.Toleration{}, false, fmt.Errorf("toleration %s: tolerationSeconds %s is not a whole number", t.Key, task.Format(t.TolerationSeconds))
		}
		tol.TolerationSeconds = &n
	}
	return tol, true, nil
}

// podSettings: image pulls, pod metadata, the deadline, the security context and
// init containers.
func (pw *podWriter) podSettings(k *KubernetesExecutor) error {
	for _, ips := range k.ImagePullSecret {
		n, err := pw.name("image pull secret", ips.SecretName, ips.SecretNameParameter)
		if err != nil {
			return err
		}
		if n == "" {
			continue
		}
		pw.pod.ImagePullSecrets = append(pw.pod.ImagePullSecrets, corev1.LocalObjectReference{Name: n})
	}
	if k.ImagePullPolicy != "" {
		pw.ctr.ImagePullPolicy = corev1.PullPolicy(k.ImagePullPolicy)
	}
	if pm := k.PodMetadata; pm != nil {
		for key, v := range pm.Labels {
			if pw.meta.Labels == nil {
				pw.meta.Labels = map[string]string{}
			}
			pw.meta.Labels[key] = v
		}
		for key, v := range pm.Annotations {
			if pw.meta.Annotations == nil {
				pw.meta.Annotations = map[string]string{}
			}
			pw.meta.Annotations[key] = v
		}
	}
	if k.ActiveDeadlineSeconds != nil {
		n, err := strconv.ParseInt(task.Format(k.ActiveDeadlineSeconds), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("activeDeadlineSeconds %s is not a positive whole number", task.Format(k.ActiveDeadlineSeconds))
		}
		pw.pod.ActiveDeadlineSeconds = &n
	}
	if len(k.SecurityContext) > 0 {
		sc, err := securityContext(k.SecurityContext)
		if err != nil {
			return err
		}
		pw.ctr.SecurityContext = sc
	}
	for _, raw := range k.InitContainers {
		ic, err := initContainer(raw)
		if err != nil {
			return err
		}
		pw.pod.InitContainers = append(pw.pod.InitContainers, ic)
	}
	return nil
}

func optional(b bool) *bool {
	if !b {
		return nil
	}
	return &b
}

// platformParam resolves a platform setting's parameter: it must be known at import.
func (c *converter) platformParam(s *step, what string, in *ParameterInput) (any, error) {
	switch {
	case in.RuntimeValue != nil:
		return task.Plain(in.RuntimeValue.Constant), nil
	case in.ComponentInputParameter != "":
		p, ok := s.dagParams[in.ComponentInputParameter]
		if !ok {
			p, ok = s.params[in.ComponentInputParameter]
		}
		if !ok {
			return nil, nil // an optional input left unset
		}
		if !p.static {
			return nil, fmt.Errorf("%s comes from an upstream task's output (%s); sluice sets it at import, so it must be a constant or a pipeline parameter", what, in.ComponentInputParameter)
		}
		return p.value, nil
	case in.TaskOutputParameter != nil:
		return nil, fmt.Errorf("%s comes from the output %s of task %s; sluice sets it at import, so it must be a constant or a pipeline parameter",
			what, in.TaskOutputParameter.OutputParameterKey, in.TaskOutputParameter.ProducerTask)
	}
	return nil, fmt.Errorf("%s has no value", what)
}

// remarshal decodes a JSON-like value into out, strictly.
func remarshal(v any, out any) error {
	if s, ok := v.(string); ok {
		var parsed any
		if json.Unmarshal([]byte(s), &parsed) == nil {
			v = parsed
		}
	}
	b, err := json.Marshal(task.Plain(v))
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(out); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func (c *converter) nodeAffinity(s *step, pod *corev1.PodSpec, na NodeAffinityTerm) error {
	if pod.Affinity == nil {
		pod.Affinity = &corev1.Affinity{}
	}
	if pod.Affinity.NodeAffinity == nil {
		pod.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	aff := pod.Affinity.NodeAffinity
	if na.NodeAffinityJSON != nil {
		v, err := c.platformParam(s, "node affinity", na.NodeAffinityJSON)
		if err != nil || v == nil {
			if v == nil && pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil && len(aff.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
				pod.Affinity = nil
			}
			return err
		}
		var got corev1.NodeAffinity
		if err := remarshal(v, &got); err != nil {
			return fmt.Errorf("node affinity: %w", err)
		}
		if r := got.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			if aff.RequiredDuringSchedulingIgnoredDuringExecution == nil {
				aff.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
			}
			req := aff.RequiredDuringSchedulingIgnoredDuringExecution
			req.NodeSelectorTerms = append(req.NodeSelectorTerms, r.NodeSelectorTerms...)
		}
		aff.PreferredDuringSchedulingIgnoredDuringExecution = append(aff.PreferredDuringSchedulingIgnoredDuringExecution, got.PreferredDuringSchedulingIgnoredDuringExecution...)
	} else {
		var term corev1.NodeSelectorTerm
		for _, m := range na.MatchExpressions {
			term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{Key: m.Key, Operator: corev1.NodeSelectorOperator(m.Operator), Values: m.Values})
		}
		if na.Weight != nil {
			aff.PreferredDuringSchedulingIgnoredDuringExecution = append(aff.PreferredDuringSchedulingIgnoredDuringExecution,
				corev1.PreferredSchedulingTerm{Weight: int32(*na.Weight), Preference: term})
		} else if len(term.MatchExpressions) > 0 {
			if aff.RequiredDuringSchedulingIgnoredDuringExecution == nil {
				aff.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
			}
			req := aff.RequiredDuringSchedulingIgnoredDuringExecution
			req.NodeSelectorTerms = append(req.NodeSelectorTerms, term)
		}
	}
	if aff.RequiredDuringSchedulingIgnoredDuringExecution == nil && len(aff.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		pod.Affinity = nil
	}
	return nil
}

// securityContext reads kubernetes.set_security_context's fields, which
// the SDK writes as strings.
func securityContext(raw map[string]any) (*corev1.SecurityContext, error) {
	sc := &corev1.SecurityContext{}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := task.Format(raw[k])
		switch k {
		case "runAsUser", "runAsGroup":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("securityContext.%s %q is not a whole number", k, v)
			}
			if k == "runAsUser" {
				sc.RunAsUser = &n
			} else {
				sc.RunAsGroup = &n
			}
		case "runAsNonRoot", "privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("securityContext.%s %q is not true or false", k, v)
			}
			switch k {
			case "runAsNonRoot":
				sc.RunAsNonRoot = &b
			case "privileged":
				sc.Privileged = &b
			case "allowPrivilegeEscalation":
				sc.AllowPrivilegeEscalation = &b
			default:
				sc.ReadOnlyRootFilesystem = &b
			}
		default:
			return nil, fmt.Errorf("securityContext.%s: the importer does not know this setting", k)
		}
	}
	return sc, nil
}

// initContainer reads kubernetes.add_init_container's container, whose
// volume mounts name their volume as volumeName.
func initContainer(raw map[string]any) (corev1.Container, error) {
	var in struct {
		Name         string          `json:"name"`
		Image        string          `json:"image"`
		Command      []string        `json:"command"`
		Args         []string        `json:"args"`
		Env          []corev1.EnvVar `json:"env"`
		Resources    map[string]any  `json:"resources"`
		VolumeMounts []struct {
			MountPath  string `json:"mountPath"`
			VolumeName string `json:"volumeName"`
		} `json:"volumeMounts"`
	}
	if err := remarshal(raw, &in); err != nil {
		return corev1.Container{}, fmt.Errorf("init container: %w", err)
	}
	if len(in.Resources) > 0 {
		return corev1.Container{}, fmt.Errorf("init container %s: resources are not supported by the importer", in.Name)
	}
	ic := corev1.Container{Name: in.Name, Image: in.Image, Command: in.Command, Args: in.Args, Env: in.Env}
	for _, m := range in.VolumeMounts {
		ic.VolumeMounts = append(ic.VolumeMounts, corev1.VolumeMount{Name: m.VolumeName, MountPath: m.MountPath})
	}
	return ic, nil
}

// ephemeralVolume reads kubernetes.add_ephemeral_volume's volume.
func ephemeralVolume(raw map[string]any) (corev1.Volume, string, error) {
	var in struct {
		VolumeName          string             `json:"volumeName"`
		MountPath           string             `json:"mountPath"`
		AccessModes         []string           `json:"accessModes"`
		Size                string             `json:"size"`
		StorageClassName    string             `json:"storageClassName"`
		DefaultStorageClass bool               `json:"defaultStorageClass"`
		Metadata            *metav1.ObjectMeta `json:"metadata"`
	}
	if err := remarshal(raw, &in); err != nil {
		return corev1.Volume{}, "", fmt.Errorf("ephemeral volume: %w", err)
	}
	q, err := resource.ParseQuantity(in.Size)
	if err != nil {
		return corev1.Volume{}, "", fmt.Errorf("ephemeral volume %s: size %q is not a quantity", in.VolumeName, in.Size)
	}
	spec := corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: q}}}
	for _, m := range in.AccessModes {
		spec.AccessModes = append(spec.AccessModes, corev1.PersistentVolumeAccessMode(m))
	}
	if in.StorageClassName != "" && !in.DefaultStorageClass {
		sc := in.StorageClassName
		spec.StorageClassName = &sc
	}
	tmpl := &corev1.PersistentVolumeClaimTemplate{Spec: spec}
	if in.Metadata != nil {
		tmpl.ObjectMeta = metav1.ObjectMeta{Labels: in.Metadata.Labels, Annotations: in.Metadata.Annotations}
	}
	return corev1.Volume{Name: in.VolumeName, VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: tmpl}}}, in.MountPath, nil
}
