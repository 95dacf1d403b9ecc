package retry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Options tune Apply.
type Options struct {
	// Dir is where each new object's manifest is written before the failed
	// generation is deleted; it is removed once the new one exists, and
	// left, named in the error, when it could not be created.
	Dir string
	// Timeout bounds the wait for a failed generation to be gone (its
	// pods may take a moment).
	Timeout time.Duration
	// Poll is how often that wait looks.
	Poll time.Duration
}

// Replaced is what Apply did with one task that reruns.
type Replaced struct {
	Task, Kind, Name string
	Attempt          int
	// Already is set when another retry created the new generation first.
	Already bool
	// Manifest is the new object's manifest, left on disk when Err is set.
	Manifest string
	Err      error
}

// CheckAccess asks the API server whether the user may delete and create
// the kinds of objects a retry replaces, before anything is deleted; the
// error names each verb and resource refused. Without an answer (the
// review itself refused), the retry goes on: the API server still decides.
func CheckAccess(ctx context.Context, c client.Client, ns string, plan []Decision) error {
	need := map[string]bool{}
	for _, d := range plan {
		if d.Action == Rerun {
			need[kindOf(d.Object)] = true
		}
	}
	var refused []string
	for _, kind := range []string{"Job", "Pod"} {
		if !need[kind] {
			continue
		}
		group, resource := "batch", "jobs"
		if kind == "Pod" {
			group, resource = "", "pods"
		}
		for _, verb := range []string{"delete", "create"} {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource},
			}}
			if err := c.Create(ctx, review); err != nil {
				return nil //nolint:nilerr // no answer: the API server decides on the requests themselves
			}
			if !review.Status.Allowed {
				refused = append(refused, verb+" "+strings.TrimSuffix(resource+"."+group, "."))
			}
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("you may not %s in namespace %s: a retry deletes each failed task's object and creates it anew (ask for create and delete on them)",
			strings.Join(refused, " or "), ns)
	}
	return nil
}

// Apply creates the new generation of every task the plan reruns: it writes
// the new object's manifest to opts.Dir, deletes the failed object (only
// that generation: the delete is conditional on its UID), waits for it to
// be gone, and creates the new one. An interrupt does not stop a task
// between its delete and its create. A retry racing with another creates
// one new generation: the second finds it and reports Already.
func Apply(ctx context.Context, c client.Client, plan []Decision, opts Options) []Replaced {
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	if opts.Poll == 0 {
		opts.Poll = 200 * time.Millisecond
	}
	var out []Replaced
	for _, d := range plan {
		if d.Action != Rerun {
			continue
		}
		r := Replaced{Task: d.Task, Kind: kindOf(d.Object), Name: d.Object.GetName(), Attempt: d.Attempt}
		if ctx.Err() != nil {
			r.Err = fmt.Errorf("not retried: %w", context.Cause(ctx))
		} else {
			r.Manifest, r.Already, r.Err = replace(context.WithoutCancel(ctx), c, d.Object, d.Attempt, opts)
		}
		out = append(out, r)
	}
	return out
}

// replace swaps one failed object for its next generation.
func replace(ctx context.Context, c client.Client, old client.Object, attempt int, opts Options) (manifest string, already bool, err error) {
	renewed, err := Renew(old, attempt)
	if err != nil {
		return "", false, err
	}
	data, err := yaml.Marshal(renewed)
	if err != nil {
		return "", false, err
	}
	manifest = filepath.Join(opts.Dir, fmt.Sprintf("sluice-retry-%s-%s-%s-attempt-%d.yaml",
		old.GetNamespace(), strings.ToLower(kindOf(old)), old.GetName(), attempt))
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		return "", false, fmt.Errorf("saving the new %s before deleting the failed one: %w", kindOf(old), err)
	}
	defer func() {
		if err == nil {
			_ = os.Remove(manifest)
			manifest = ""
		}
	}()
	uid := old.GetUID()
	key := client.ObjectKeyFromObject(old)
	err = c.Delete(ctx, old, client.Preconditions{UID: &uid}, client.PropagationPolicy("Background"))
	switch {
	case apierrors.IsConflict(err): // its UID changed: a new generation is there already
		return manifest, true, nil
	case apierrors.IsNotFound(err):
	case err != nil:
		return manifest, false, fmt.Errorf("deleting the failed %s: %w", kindOf(old), err)
	}
	newer := false
	err = wait.PollUntilContextTimeout(ctx, opts.Poll, opts.Timeout, true, func(ctx context.Context) (bool, error) {
		cur := old.DeepCopyObject().(client.Object)
		switch err := c.Get(ctx, key, cur); {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, err
		case cur.GetUID() != uid:
			newer = true
			return true, nil
		}
		return false, nil
	})
	switch {
	case newer:
		return manifest, true, nil
	case err != nil:
		return manifest, false, fmt.Errorf("the failed %s is not gone after %s (kubectl get %s %s -o yaml shows what holds it): %w",
			kindOf(old), opts.Timeout, strings.ToLower(kindOf(old)), old.GetName(), err)
	}
	err = c.Create(ctx, renewed)
	if apierrors.IsAlreadyExists(err) {
		cur := old.DeepCopyObject().(client.Object)
		if getErr := c.Get(ctx, key, cur); getErr == nil && cur.GetUID() != uid {
			return manifest, true, nil
		}
	}
	if err != nil {
		return manifest, false, fmt.Errorf("creating attempt %d: %w", attempt, err)
	}
	return manifest, false, nil
}
