package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// injectCABundles sets caPEM as the caBundle of every webhook of both
// configurations. It tries both even when one fails.
func (r *Rotator) injectCABundles(ctx context.Context, caPEM []byte) error {
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{}
	mutatingErr := r.inject(ctx, "MutatingWebhookConfiguration", r.opts.MutatingWebhookConfiguration, mutating, caPEM,
		func() []*admissionregistrationv1.WebhookClientConfig {
			return clientConfigs(mutating.Webhooks, func(w *admissionregistrationv1.MutatingWebhook) *admissionregistrationv1.WebhookClientConfig {
				return &w.ClientConfig
			})
		})
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	validatingErr := r.inject(ctx, "ValidatingWebhookConfiguration", r.opts.ValidatingWebhookConfiguration, validating, caPEM,
		func() []*admissionregistrationv1.WebhookClientConfig {
			return clientConfigs(validating.Webhooks, func(w *admissionregistrationv1.ValidatingWebhook) *admissionregistrationv1.WebhookClientConfig {
				return &w.ClientConfig
			})
		})
	return errors.Join(mutatingErr, validatingErr)
}

// clientConfigs returns the clientConfig of every webhook, to be changed in
// place; mutating and validating webhooks are different types.
func clientConfigs[W any](webhooks []W, clientConfig func(*W) *admissionregistrationv1.WebhookClientConfig) []*admissionregistrationv1.WebhookClientConfig {
	configs := make([]*admissionregistrationv1.WebhookClientConfig, 0, len(webhooks))
	for i := range webhooks {
		configs = append(configs, clientConfig(&webhooks[i]))
	}
	return configs
}

// inject gets the configuration kind/name into obj and sets caPEM in the
// client configs that clientConfigs returns from obj. It updates only when
// a caBundle differed; on a Conflict the next check tries again.
func (r *Rotator) inject(ctx context.Context, kind, name string, obj client.Object, caPEM []byte, clientConfigs func() []*admissionregistrationv1.WebhookClientConfig) error {
	if err := r.reader.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s %s not found: the sluice Helm chart creates it; helm upgrade restores it", kind, name)
		}
		return fmt.Errorf("getting %s %s: %w", kind, name, err)
	}
	changed := 0
	for _, cc := range clientConfigs() {
		if !bytes.Equal(cc.CABundle, caPEM) {
			cc.CABundle = caPEM
			changed++
		}
	}
	log := ctrl.LoggerFrom(ctx).WithValues("kind", kind, "webhookConfiguration", klog.KObj(obj))
	if changed == 0 {
		log.V(4).Info("caBundle up to date")
		return nil
	}
	if err := r.writer.Update(ctx, obj); err != nil {
		return fmt.Errorf("setting the caBundle of %s %s: %w", kind, name, err)
	}
	log.Info("Injected the webhook CA", "webhooks", changed)
	return nil
}
