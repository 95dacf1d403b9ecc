// Package controller is sluice's dependency controller: it releases held
// steps when their upstreams finish, marks the ones that will never run, and
// keeps each step's phase and reason on the object itself.
package controller

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
)

// RunIndex indexes sluice Jobs and Pods by their run (within a namespace).
const RunIndex = "sluice.dev/run"

// IndexByRun is the run index function, also usable with the fake client.
func IndexByRun(obj client.Object) []string {
	if run := annotations.RunOf(obj); run != "" {
		return []string{run}
	}
	return nil
}

// JobIndex indexes Pods by the UID of the Job that controls them.
const JobIndex = "sluice.dev/job-uid"

// IndexByJob is the Job index function, also usable with the fake client.
func IndexByJob(obj client.Object) []string {
	if uid := annotations.JobOf(obj); uid != "" {
		return []string{string(uid)}
	}
	return nil
}

// SetupIndexes adds the run index for Jobs and Pods, and the Job index for
// Pods, to the indexer; tests call it on the fake client builder's indexer too.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	for _, obj := range []client.Object{&batchv1.Job{}, &corev1.Pod{}} {
		if err := indexer.IndexField(ctx, obj, RunIndex, IndexByRun); err != nil {
			return fmt.Errorf("indexing %T by run: %w", obj, err)
		}
	}
	if err := indexer.IndexField(ctx, &corev1.Pod{}, JobIndex, IndexByJob); err != nil {
		return fmt.Errorf("indexing pods by job: %w", err)
	}
	return nil
}
