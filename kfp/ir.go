// Package kfp converts pipelines compiled by the Kubeflow Pipelines SDK
// (KFP v2 intermediate representation, schemaVersion 2.1.0) into labelled
// batch/v1 Jobs that sluice runs as one pipeline run.
//
// The part of the IR that the converter reads is declared here as Go types;
// the file is decoded strictly, so a field these types do not declare is an
// error that names it, never a setting silently dropped.
package kfp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// SchemaVersion is the IR version the converter reads.
const SchemaVersion = "2.1.0"

// Pipeline is a compiled pipeline: its spec and, when the file has a second
// document, its Kubernetes platform settings.
type Pipeline struct {
	Spec     PipelineSpec
	Platform *KubernetesPlatform
}

// PipelineSpec is the first document of a compiled pipeline.
type PipelineSpec struct {
	Components          map[string]*ComponentSpec `json:"components"`
	DeploymentSpec      DeploymentSpec            `json:"deploymentSpec"`
	PipelineInfo        PipelineInfo              `json:"pipelineInfo"`
	Root                *ComponentSpec            `json:"root"`
	SchemaVersion       string                    `json:"schemaVersion"`
	SDKVersion          string                    `json:"sdkVersion"`
	DefaultPipelineRoot string                    `json:"defaultPipelineRoot"`
}

// PipelineInfo names the pipeline.
type PipelineInfo struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	Description string `json:"description"`
}

// ComponentSpec is a container component (ExecutorLabel) or a DAG.
type ComponentSpec struct {
	ExecutorLabel     string       `json:"executorLabel"`
	DAG               *DAGSpec     `json:"dag"`
	InputDefinitions  *Definitions `json:"inputDefinitions"`
	OutputDefinitions *Definitions `json:"outputDefinitions"`
}

// Definitions are a component's declared inputs or outputs.
type Definitions struct {
	Parameters map[string]ParameterSpec `json:"parameters"`
	Artifacts  map[string]ArtifactSpec  `json:"artifacts"`
}

// ParameterSpec declares one parameter.
type ParameterSpec struct {
	ParameterType string `json:"parameterType"`
	DefaultValue  any    `json:"defaultValue"`
	IsOptional    bool   `json:"isOptional"`
	Description   string `json:"description"`
}

// ArtifactSpec declares one artifact.
type ArtifactSpec struct {
	ArtifactType   ArtifactType `json:"artifactType"`
	IsArtifactList bool         `json:"isArtifactList"`
	IsOptional     bool         `json:"isOptional"`
	Description    string       `json:"description"`
}

// ArtifactType is an artifact's schema, e.g. system.Dataset.
type ArtifactType struct {
	SchemaTitle   string `json:"schemaTitle"`
	SchemaVersion string `json:"schemaVersion"`
}

// DAGSpec is a graph of tasks.
type DAGSpec struct {
	Tasks   map[string]*TaskSpec `json:"tasks"`
	Outputs *DAGOutputs          `json:"outputs"`
}

// DAGOutputs say which inner tasks' outputs a DAG's outputs are.
type DAGOutputs struct {
	Parameters map[string]DAGOutputParameter `json:"parameters"`
	Artifacts  map[string]DAGOutputArtifact  `json:"artifacts"`
}

// DAGOutputParameter is one output parameter of a DAG.
type DAGOutputParameter struct {
	ValueFromParameter *ParameterSelector `json:"valueFromParameter"`
	ValueFromOneof     *struct {
		ParameterSelectors []ParameterSelector `json:"parameterSelectors"`
	} `json:"valueFromOneof"`
}

// ParameterSelector picks an inner task's output parameter.
type ParameterSelector struct {
	ProducerSubtask    string `json:"producerSubtask"`
	OutputParameterKey string `json:"outputParameterKey"`
}

// DAGOutputArtifact is one output artifact of a DAG; several selectors are a dsl.OneOf.
type DAGOutputArtifact struct {
	ArtifactSelectors []ArtifactSelector `json:"artifactSelectors"`
}

// ArtifactSelector picks an inner task's output artifact.
type ArtifactSelector struct {
	ProducerSubtask   string `json:"producerSubtask"`
	OutputArtifactKey string `json:"outputArtifactKey"`
}

// TaskSpec is one task of a DAG.
type TaskSpec struct {
	TaskInfo          TaskInfo           `json:"taskInfo"`
	ComponentRef      ComponentRef       `json:"componentRef"`
	DependentTasks    []string           `json:"dependentTasks"`
	Inputs            *TaskInputs        `json:"inputs"`
	TriggerPolicy     *TriggerPolicy     `json:"triggerPolicy"`
	ParameterIterator *ParameterIterator `json:"parameterIterator"`
	ArtifactIterator  *ArtifactIterator  `json:"artifactIterator"`
	IteratorPolicy    *IteratorPolicy    `json:"iteratorPolicy"`
	RetryPolicy       *RetryPolicy       `json:"retryPolicy"`
	CachingOptions    *CachingOptions    `json:"cachingOptions"`
}

// TaskInfo holds the task's display name.
type TaskInfo struct {
	Name string `json:"name"`
}

// ComponentRef names the task's component.
type ComponentRef struct {
	Name string `json:"name"`
}

// TaskInputs bind a task's inputs.
type TaskInputs struct {
	Parameters map[string]ParameterInput `json:"parameters"`
	Artifacts  map[string]ArtifactInput  `json:"artifacts"`
}

// ParameterInput is where one input parameter's value comes from.
type ParameterInput struct {
	ComponentInputParameter string               `json:"componentInputParameter"`
	RuntimeValue            *RuntimeValue        `json:"runtimeValue"`
	TaskOutputParameter     *TaskOutputParameter `json:"taskOutputParameter"`
	TaskFinalStatus         *struct {
		ProducerTask string `json:"producerTask"`
	} `json:"taskFinalStatus"`
	ParameterExpressionSelector string `json:"parameterExpressionSelector"`
}

// RuntimeValue is a constant.
type RuntimeValue struct {
	Constant any `json:"constant"`
}

// TaskOutputParameter is a sibling task's output parameter.
type TaskOutputParameter struct {
	ProducerTask       string `json:"producerTask"`
	OutputParameterKey string `json:"outputParameterKey"`
}

// ArtifactInput is where one input artifact comes from.
type ArtifactInput struct {
	ComponentInputArtifact string `json:"componentInputArtifact"`
	TaskOutputArtifact     *struct {
		ProducerTask      string `json:"producerTask"`
		OutputArtifactKey string `json:"outputArtifactKey"`
	} `json:"taskOutputArtifact"`
}

// TriggerPolicy is a task's condition and strategy.
type TriggerPolicy struct {
	Condition string `json:"condition"`
	Strategy  string `json:"strategy"`
}

// ParameterIterator is a dsl.ParallelFor over parameters.
type ParameterIterator struct {
	ItemInput string `json:"itemInput"`
	Items     struct {
		Raw            *string `json:"raw"`
		InputParameter string  `json:"inputParameter"`
	} `json:"items"`
}

// ArtifactIterator is a dsl.ParallelFor over artifacts (refused).
type ArtifactIterator struct {
	ItemInput string `json:"itemInput"`
	Items     struct {
		InputArtifact string `json:"inputArtifact"`
	} `json:"items"`
}

// IteratorPolicy bounds a loop's parallelism.
type IteratorPolicy struct {
	ParallelismLimit int `json:"parallelismLimit"`
}

// RetryPolicy is dsl's set_retry.
type RetryPolicy struct {
	MaxRetryCount      int     `json:"maxRetryCount"`
	BackoffDuration    string  `json:"backoffDuration"`
	BackoffFactor      float64 `json:"backoffFactor"`
	BackoffMaxDuration string  `json:"backoffMaxDuration"`
}

// CachingOptions are KFP's cache settings (sluice has no cache).
type CachingOptions struct {
	EnableCache bool   `json:"enableCache"`
	CacheKey    string `json:"cacheKey"`
}

// DeploymentSpec holds the executors.
type DeploymentSpec struct {
	Executors map[string]*DeploymentExecutor `json:"executors"`
}

// DeploymentExecutor runs a component: a container or an importer.
type DeploymentExecutor struct {
	Container *ContainerSpec `json:"container"`
	Importer  *Importer      `json:"importer"`
}

// Importer is dsl.importer (refused).
type Importer struct {
	ArtifactURI         map[string]any `json:"artifactUri"`
	TypeSchema          ArtifactType   `json:"typeSchema"`
	Metadata            map[string]any `json:"metadata"`
	Reimport            bool           `json:"reimport"`
	DownloadToWorkspace bool           `json:"downloadToWorkspace"`
}

// ContainerSpec is a container component's container.
type ContainerSpec struct {
	Image     string        `json:"image"`
	Command   []string      `json:"command"`
	Args      []string      `json:"args"`
	Env       []EnvVar      `json:"env"`
	Resources *ResourceSpec `json:"resources"`
}

// EnvVar is a static environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ResourceSpec is a container's resources, as the SDK writes them: the
// resource* strings (which may be placeholders) and the older numbers.
type ResourceSpec struct {
	CPULimit              float64          `json:"cpuLimit"`
	MemoryLimit           float64          `json:"memoryLimit"`
	CPURequest            float64          `json:"cpuRequest"`
	MemoryRequest         float64          `json:"memoryRequest"`
	ResourceCPULimit      string           `json:"resourceCpuLimit"`
	ResourceMemoryLimit   string           `json:"resourceMemoryLimit"`
	ResourceCPURequest    string           `json:"resourceCpuRequest"`
	ResourceMemoryRequest string           `json:"resourceMemoryRequest"`
	Accelerator           *AcceleratorSpec `json:"accelerator"`
}

// AcceleratorSpec is set_accelerator_type / set_accelerator_limit.
type AcceleratorSpec struct {
	Type          string `json:"type"`
	Count         any    `json:"count"`
	ResourceType  string `json:"resourceType"`
	ResourceCount string `json:"resourceCount"`
}

// KubernetesPlatform is the second document: kfp-kubernetes settings.
type KubernetesPlatform struct {
	Platforms struct {
		Kubernetes struct {
			DeploymentSpec struct {
				Executors map[string]*KubernetesExecutor `json:"executors"`
			} `json:"deploymentSpec"`
			PipelineConfig map[string]any `json:"pipelineConfig"`
		} `json:"kubernetes"`
	} `json:"platforms"`
}

// KubernetesExecutor is one executor's kfp-kubernetes settings.
type KubernetesExecutor struct {
	SecretAsEnv            []SecretAsEnv       `json:"secretAsEnv"`
	SecretAsVolume         []SecretAsVolume    `json:"secretAsVolume"`
	ConfigMapAsEnv         []ConfigMapAsEnv    `json:"configMapAsEnv"`
	ConfigMapAsVolume      []ConfigMapAsVolume `json:"configMapAsVolume"`
	PVCMount               []PVCMount          `json:"pvcMount"`
	NodeSelector           *NodeSelector       `json:"nodeSelector"`
	Tolerations            []Toleration        `json:"tolerations"`
	ImagePullSecret        []ImagePullSecret   `json:"imagePullSecret"`
	ImagePullPolicy        string              `json:"imagePullPolicy"`
	PodMetadata            *PodMetadata        `json:"podMetadata"`
	FieldPathAsEnv         []FieldPathAsEnv    `json:"fieldPathAsEnv"`
	EmptyDirMounts         []EmptyDirMount     `json:"emptyDirMounts"`
	ActiveDeadlineSeconds  any                 `json:"activeDeadlineSeconds"`
	NodeAffinity           []NodeAffinityTerm  `json:"nodeAffinity"`
	SecurityContext        map[string]any      `json:"securityContext"`
	InitContainers         []map[string]any    `json:"initContainers"`
	GenericEphemeralVolume []map[string]any    `json:"genericEphemeralVolume"`
}

// SecretAsEnv is kubernetes.use_secret_as_env.
type SecretAsEnv struct {
	SecretName          string          `json:"secretName"`
	SecretNameParameter *ParameterInput `json:"secretNameParameter"`
	KeyToEnv            []struct {
		SecretKey string `json:"secretKey"`
		EnvVar    string `json:"envVar"`
	} `json:"keyToEnv"`
	Optional bool `json:"optional"`
}

// SecretAsVolume is kubernetes.use_secret_as_volume.
type SecretAsVolume struct {
	SecretName          string          `json:"secretName"`
	SecretNameParameter *ParameterInput `json:"secretNameParameter"`
	MountPath           string          `json:"mountPath"`
	Optional            bool            `json:"optional"`
}

// ConfigMapAsEnv is kubernetes.use_config_map_as_env.
type ConfigMapAsEnv struct {
	ConfigMapName          string          `json:"configMapName"`
	ConfigMapNameParameter *ParameterInput `json:"configMapNameParameter"`
	KeyToEnv               []struct {
		ConfigMapKey string `json:"configMapKey"`
		EnvVar       string `json:"envVar"`
	} `json:"keyToEnv"`
	Optional bool `json:"optional"`
}

// ConfigMapAsVolume is kubernetes.use_config_map_as_volume.
type ConfigMapAsVolume struct {
	ConfigMapName          string          `json:"configMapName"`
	ConfigMapNameParameter *ParameterInput `json:"configMapNameParameter"`
	MountPath              string          `json:"mountPath"`
	Optional               bool            `json:"optional"`
}

// PVCMount is kubernetes.mount_pvc.
type PVCMount struct {
	Constant                string               `json:"constant"`
	ComponentInputParameter string               `json:"componentInputParameter"`
	TaskOutputParameter     *TaskOutputParameter `json:"taskOutputParameter"`
	PVCNameParameter        *ParameterInput      `json:"pvcNameParameter"`
	MountPath               string               `json:"mountPath"`
}

// NodeSelector is kubernetes.add_node_selector.
type NodeSelector struct {
	Labels           map[string]string `json:"labels"`
	NodeSelectorJSON *ParameterInput   `json:"nodeSelectorJson"`
}

// Toleration is kubernetes.add_toleration.
type Toleration struct {
	Key               string          `json:"key"`
	Operator          string          `json:"operator"`
	Value             string          `json:"value"`
	Effect            string          `json:"effect"`
	TolerationSeconds any             `json:"tolerationSeconds"`
	TolerationJSON    *ParameterInput `json:"tolerationJson"`
}

// ImagePullSecret is kubernetes.set_image_pull_secrets.
type ImagePullSecret struct {
	SecretName          string          `json:"secretName"`
	SecretNameParameter *ParameterInput `json:"secretNameParameter"`
}

// PodMetadata is kubernetes.add_pod_label / add_pod_annotation.
type PodMetadata struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// FieldPathAsEnv is kubernetes.use_field_path_as_env.
type FieldPathAsEnv struct {
	Name      string `json:"name"`
	FieldPath string `json:"fieldPath"`
}

// EmptyDirMount is kubernetes.empty_dir_mount.
type EmptyDirMount struct {
	VolumeName string `json:"volumeName"`
	MountPath  string `json:"mountPath"`
	Medium     string `json:"medium"`
	SizeLimit  string `json:"sizeLimit"`
}

// NodeAffinityTerm is kubernetes.add_node_affinity.
type NodeAffinityTerm struct {
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"matchExpressions"`
	Weight           *float64        `json:"weight"`
	NodeAffinityJSON *ParameterInput `json:"nodeAffinityJson"`
}

// Decode reads a compiled pipeline: one YAML (or JSON) document with the
// pipeline spec and an optional second one with its platform settings.
// Any field the converter does not know is an error naming it.
func Decode(data []byte) (*Pipeline, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not YAML: %s", oneLine(err.Error()))
		}
		if node.Kind == yaml.DocumentNode && len(node.Content) == 0 {
			continue
		}
		b, err := yaml.Marshal(&node)
		if err != nil {
			return nil, fmt.Errorf("not YAML: %s", oneLine(err.Error()))
		}
		docs = append(docs, b)
	}
	if len(docs) == 0 {
		return nil, errors.New("the file is empty; expected a pipeline compiled by the KFP SDK (kfp.compiler.Compiler().compile)")
	}
	var probe map[string]any
	if err := sigsyaml.Unmarshal(docs[0], &probe); err != nil {
		return nil, fmt.Errorf("not a KFP pipeline: %s", oneLine(err.Error()))
	}
	if _, ok := probe["pipelineInfo"]; !ok {
		if _, isWorkflow := probe["apiVersion"]; isWorkflow {
			return nil, fmt.Errorf("not a KFP pipeline spec (it is a Kubernetes object, kind %v); expected the IR YAML that kfp.compiler.Compiler().compile writes", probe["kind"])
		}
		return nil, errors.New("not a KFP pipeline spec: it has no pipelineInfo; expected the IR YAML that kfp.compiler.Compiler().compile writes")
	}
	if v, _ := probe["schemaVersion"].(string); v != SchemaVersion {
		return nil, fmt.Errorf("schemaVersion %q is not supported; expected %q (KFP SDK 2.x)", fmt.Sprint(probe["schemaVersion"]), SchemaVersion)
	}
	if len(docs) > 2 {
		return nil, fmt.Errorf("the file has %d documents; a compiled pipeline has one, and a second with its platform settings", len(docs))
	}
	p := &Pipeline{}
	if err := strict(docs[0], &p.Spec); err != nil {
		return nil, err
	}
	if len(docs) == 2 {
		p.Platform = &KubernetesPlatform{}
		if err := strict(docs[1], p.Platform); err != nil {
			return nil, fmt.Errorf("platform document: %w", err)
		}
	}
	if p.Spec.Root == nil || p.Spec.Root.DAG == nil {
		return nil, errors.New("not a KFP pipeline spec: root.dag is missing")
	}
	return p, nil
}

// strict decodes YAML into v, refusing fields v does not declare.
func strict(doc []byte, v any) error {
	js, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("not YAML: %s", oneLine(err.Error()))
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s: the importer does not know this KFP feature", f)
		}
		return fmt.Errorf("not a KFP pipeline spec: %s", oneLine(strings.TrimPrefix(msg, "json: ")))
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
