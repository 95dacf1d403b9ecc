package webhook

import (
	"context"
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/index"
)

// Options configure the webhooks.
type Options struct {
	// ControllerUsername is the identity allowed to write the
	// controller-owned keys (the manager's own, see WhoAmI).
	ControllerUsername string
	// SchedulerName is set on steps that would use the default scheduler
	// (empty: leave schedulerName alone).
	SchedulerName string
	// Tasks is the task index the graph checks run against, fed by the
	// manager's informers (index.Runs.Feed).
	Tasks *index.Runs
	// Nodes lists the labels of the cluster's nodes, to warn about an
	// accelerator that no node offers (nil: no warning).
	Nodes NodeLabels
}

// NodeLabels returns the labels of every node of the cluster.
type NodeLabels func(ctx context.Context) ([]map[string]string, error)

// SetupWebhooks registers the Job and Pod webhooks with the manager, at
// controller-runtime's default paths (/mutate-batch-v1-job, /mutate--v1-pod,
// /validate-batch-v1-job, /validate--v1-pod).
func SetupWebhooks(mgr ctrl.Manager, opts Options) error {
	if opts.Tasks == nil {
		return errors.New("setting up the webhooks: no task index")
	}
	exists := existsIn(mgr.GetAPIReader())
	if opts.Nodes == nil {
		nodes, err := nodeLabelsFrom(mgr.GetCache())
		if err != nil {
			return fmt.Errorf("setting up the webhooks: %w", err)
		}
		opts.Nodes = nodes
	}
	job := NewJobWebhook(opts, exists)
	if err := ctrl.NewWebhookManagedBy(mgr, &batchv1.Job{}).WithValidator(job).Complete(); err != nil {
		return fmt.Errorf("setting up the job webhook: %w", err)
	}
	pod := NewPodWebhook(opts, exists)
	if err := ctrl.NewWebhookManagedBy(mgr, &corev1.Pod{}).WithValidator(pod).Complete(); err != nil {
		return fmt.Errorf("setting up the pod webhook: %w", err)
	}
	mgr.GetWebhookServer().Register(JobMutatePath, job.Mutating())
	mgr.GetWebhookServer().Register(PodMutatePath, pod.Mutating())
	return nil
}

// The paths of the mutating webhooks (controller-runtime's defaults).
const (
	JobMutatePath = "/mutate-batch-v1-job"
	PodMutatePath = "/mutate--v1-pod"
)

// Mutating returns the handler of the Job mutating webhook.
func (w *JobWebhook) Mutating() *admission.Webhook {
	return newMutatingHandler(w.mutator, func() *batchv1.Job { return &batchv1.Job{} }, jobStep)
}

// Mutating returns the handler of the Pod mutating webhook.
func (w *PodWebhook) Mutating() *admission.Webhook {
	return newMutatingHandler(w.mutator, func() *corev1.Pod { return &corev1.Pod{} }, podStep)
}

// NewJobWebhook returns the Job webhook; exists looks up objects the index
// holds only from admission (nil: never).
func NewJobWebhook(opts Options, exists index.Exists) *JobWebhook {
	return &JobWebhook{mutator: newMutator(opts), validator: newValidator(opts, exists)}
}

// NewPodWebhook returns the Pod webhook, as NewJobWebhook.
func NewPodWebhook(opts Options, exists index.Exists) *PodWebhook {
	return &PodWebhook{mutator: newMutator(opts), validator: newValidator(opts, exists)}
}

func newMutator(opts Options) mutator { return mutator{schedulerName: opts.SchedulerName} }

func newValidator(opts Options, exists index.Exists) validator {
	return validator{tasks: opts.Tasks, exists: exists, controllerUser: opts.ControllerUsername, nodes: opts.Nodes}
}

// existsIn asks the API server, not a cache, for the object's metadata.
func existsIn(reader client.Reader) index.Exists {
	return func(ctx context.Context, ref index.Ref) (bool, error) {
		obj := &metav1.PartialObjectMetadata{}
		gv := corev1.SchemeGroupVersion
		if ref.Kind == "Job" {
			gv = batchv1.SchemeGroupVersion
		}
		obj.SetGroupVersionKind(gv.WithKind(ref.Kind))
		err := reader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, obj)
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("looking up %s: %w", ref, err)
		}
		return true, nil
	}
}

// nodeLabelsFrom lists nodes' labels from the manager's cache, through an
// informer on node metadata registered now, so that admission never waits
// for it: until it has synced, there is no answer.
func nodeLabelsFrom(c cache.Cache) (NodeLabels, error) {
	node := &metav1.PartialObjectMetadata{}
	node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	informer, err := c.GetInformer(context.Background(), node, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("watching nodes: %w", err)
	}
	return func(ctx context.Context) ([]map[string]string, error) {
		if !informer.HasSynced() {
			return nil, errors.New("the node cache has not synced yet")
		}
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
		if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		labels := make([]map[string]string, len(list.Items))
		for i := range list.Items {
			labels[i] = list.Items[i].Labels
		}
		return labels, nil
	}, nil
}
