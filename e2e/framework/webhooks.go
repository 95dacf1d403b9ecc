// Package framework starts and stops the environments sluice's integration
// and end-to-end tests run in, and holds the helpers they share.
package framework

import (
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
)

// WebhookConfigurations returns sluice's mutating and validating webhook
// configurations, with clientConfig made by cc from each handler's path. They
// match the scoping the chart uses: only objects labelled sluice.dev/pipeline
// are sent, and those are refused while the webhook is down.
func WebhookConfigurations(name string, cc func(path string) admissionregv1.WebhookClientConfig) (*admissionregv1.MutatingWebhookConfiguration, *admissionregv1.ValidatingWebhookConfiguration) {
	selector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: annotations.PipelineLabel, Operator: metav1.LabelSelectorOpExists,
	}}}
	rule := func(group, resource string, ops ...admissionregv1.OperationType) []admissionregv1.RuleWithOperations {
		return []admissionregv1.RuleWithOperations{{Operations: ops, Rule: admissionregv1.Rule{
			APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: []string{resource}, Scope: ptr.To(admissionregv1.NamespacedScope),
		}}}
	}
	fail := ptr.To(admissionregv1.Fail)
	none := ptr.To(admissionregv1.SideEffectClassNone)
	mutating := &admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	validating := &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	// Pods of a Job were mutated through the Job's template: skipping them
	// keeps a webhook outage from stopping running Jobs from creating pods.
	notJobPod := []admissionregv1.MatchCondition{{Name: "not-a-job-pod", Expression: NotJobPodCondition}}
	for _, h := range []struct {
		name, group, resource, path string
		conditions                  []admissionregv1.MatchCondition
	}{
		{"job", "batch", "jobs", "-batch-v1-job", nil},
		{"pod", "", "pods", "--v1-pod", notJobPod},
	} {
		mutating.Webhooks = append(mutating.Webhooks, admissionregv1.MutatingWebhook{
			Name: "m" + h.name + ".sluice.dev", ClientConfig: cc("/mutate" + h.path),
			Rules:         rule(h.group, h.resource, admissionregv1.Create),
			FailurePolicy: fail, SideEffects: none, ObjectSelector: selector, TimeoutSeconds: ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"}, MatchConditions: h.conditions,
		})
		validating.Webhooks = append(validating.Webhooks, admissionregv1.ValidatingWebhook{
			Name: "v" + h.name + ".sluice.dev", ClientConfig: cc("/validate" + h.path),
			Rules:         rule(h.group, h.resource, admissionregv1.Create, admissionregv1.Update),
			FailurePolicy: fail, SideEffects: none, ObjectSelector: selector, TimeoutSeconds: ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"}, MatchConditions: h.conditions,
		})
	}
	return mutating, validating
}

// NotJobPodCondition is the CEL match condition that leaves pods controlled
// by a Job out of sluice's pod webhooks.
const NotJobPodCondition = "!has(object.metadata.ownerReferences) || " +
	"!object.metadata.ownerReferences.exists(r, r.kind == 'Job' && has(r.controller) && r.controller)"
