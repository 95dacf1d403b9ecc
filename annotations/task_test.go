package annotations

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func object(name string, labels, annots map[string]string) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Name: name, Namespace: "ml", Labels: labels, Annotations: annots}
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		obj     *metav1.ObjectMeta
		want    *Task
		wantErr []string // substrings, one per expected error, in order
	}{
		"defaults run to the pipeline and task to the name": {
			obj:  object("prep", map[string]string{PipelineLabel: "churn"}, nil),
			want: &Task{Namespace: "ml", Pipeline: "churn", Run: "churn", Name: "prep", Trigger: TriggerAllSucceeded},
		},
		"full task": {
			obj: object("train-job", map[string]string{PipelineLabel: "churn", RunLabel: "r1", TaskLabel: "train"}, map[string]string{
				AfterAnnotation:   " validate ,prep",
				InputsAnnotation:  "dataset=prep.processed_data, stats=prep.stats",
				OutputsAnnotation: "model:Model, log",
				TriggerAnnotation: "all-done",
				WhenAnnotation:    " tasks.prep.phase == 'Succeeded' ",
			}),
			want: &Task{
				Namespace: "ml", Pipeline: "churn", Run: "r1", Name: "train",
				After:   []string{"validate", "prep"},
				Inputs:  []Input{{Name: "dataset", Task: "prep", Output: "processed_data"}, {Name: "stats", Task: "prep", Output: "stats"}},
				Outputs: []Output{{Name: "model", Type: "Model"}, {Name: "log", Type: "Artifact"}},
				Trigger: TriggerAllDone,
				When:    "tasks.prep.phase == 'Succeeded'",
			},
		},
		"malformed input names key, value and the expected form": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{InputsAnnotation: "dataset=prep"}),
			wantErr: []string{`metadata.annotations[sluice.dev/inputs]: Invalid value: "dataset=prep": "dataset=prep": expected name=task.output`},
		},
		"empty item in after": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AfterAnnotation: "a,,b"}),
			wantErr: []string{`sluice.dev/after]: Invalid value: "a,,b": item 2 is empty`},
		},
		"bad task name in after": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AfterAnnotation: "Prep_Data"}),
			wantErr: []string{`"Prep_Data" is not a task name`},
		},
		"duplicate after": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AfterAnnotation: "a, a"}),
			wantErr: []string{`sluice.dev/after]: Duplicate value: "a"`},
		},
		"self dependency": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{InputsAnnotation: "x=t.y"}),
			wantErr: []string{"a task cannot depend on itself"},
		},
		"inputs colliding on one env var": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{InputsAnnotation: "a-b=u.x, a_b=u.y"}),
			wantErr: []string{`inputs "a-b" and "a_b" would both be SLUICE_INPUT_A_B`},
		},
		"bad output type": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{OutputsAnnotation: "model:1x"}),
			wantErr: []string{`type "1x" must be a word`},
		},
		"unknown trigger": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{TriggerAnnotation: "always"}),
			wantErr: []string{`sluice.dev/trigger]: Unsupported value: "always": supported values: "all-succeeded", "all-done", "any-failed", "none-failed"`},
		},
		"typo of a key gets a did-you-mean": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{Prefix + "afer": "a"}),
			wantErr: []string{`metadata.annotations[sluice.dev/afer]: Invalid value: "a": unknown sluice key; did you mean sluice.dev/after?`},
		},
		"label key in the annotations is unknown there": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{RunLabel: "r"}),
			wantErr: []string{`metadata.annotations[sluice.dev/run]: Invalid value: "r": unknown sluice key; known keys here:`},
		},
		"empty pipeline": {
			obj:     object("t", map[string]string{PipelineLabel: ""}, nil),
			wantErr: []string{"metadata.labels[sluice.dev/pipeline]: Required value: the pipeline name must not be empty"},
		},
		"generateName needs a task label": {
			obj:     object("", map[string]string{PipelineLabel: "p"}, nil),
			wantErr: []string{"metadata.labels[sluice.dev/task]: Required value: an object created with generateName"},
		},
		"object name that is no label": {
			obj:     object("my.job", map[string]string{PipelineLabel: "p"}, nil),
			wantErr: []string{`metadata.labels[sluice.dev/task]: Invalid value: "my.job": the object's name is the default task name`},
		},
		"bad artifact size": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{ArtifactSizeAnnotation: "lots"}),
			wantErr: []string{`sluice.dev/artifact-size]: Invalid value: "lots": expected a positive storage quantity, e.g. 10Gi`},
		},
		"bad start deadline": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{StartDeadlineAnnotation: "ten minutes"}),
			wantErr: []string{`sluice.dev/start-deadline]: Invalid value: "ten minutes": expected a duration such as 10m or 1h30m, or "0" for no deadline`},
		},
		"negative start deadline": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{StartDeadlineAnnotation: "-5m"}),
			wantErr: []string{`sluice.dev/start-deadline]: Invalid value: "-5m"`},
		},
		"start deadline": {
			obj:  object("t", map[string]string{PipelineLabel: "p"}, map[string]string{StartDeadlineAnnotation: " 90s "}),
			want: &Task{Namespace: "ml", Pipeline: "p", Run: "p", Name: "t", Trigger: TriggerAllSucceeded, StartDeadline: ptr.To(90 * time.Second)},
		},
		"no start deadline": {
			obj:  object("t", map[string]string{PipelineLabel: "p"}, map[string]string{StartDeadlineAnnotation: "0"}),
			want: &Task{Namespace: "ml", Pipeline: "p", Run: "p", Name: "t", Trigger: TriggerAllSucceeded, StartDeadline: ptr.To(time.Duration(0))},
		},
		"attempt": {
			obj:  object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AttemptAnnotation: "2"}),
			want: &Task{Namespace: "ml", Pipeline: "p", Run: "p", Name: "t", Trigger: TriggerAllSucceeded, Attempt: 2},
		},
		"bad attempt": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AttemptAnnotation: "0"}),
			wantErr: []string{`sluice.dev/attempt]: Invalid value: "0": expected a positive integer`},
		},
		"group and after-group": {
			obj: object("join", map[string]string{PipelineLabel: "p", GroupLabel: "reports"}, map[string]string{
				AfterGroupAnnotation: "shards=1000, evals = 3",
			}),
			want: &Task{
				Namespace: "ml", Pipeline: "p", Run: "p", Name: "join", Group: "reports",
				AfterGroups: []GroupWait{{Group: "shards", Size: 1000}, {Group: "evals", Size: 3}},
				Trigger:     TriggerAllSucceeded,
			},
		},
		"bad group name": {
			obj:     object("t", map[string]string{PipelineLabel: "p", GroupLabel: "Shards"}, nil),
			wantErr: []string{`metadata.labels[sluice.dev/group]: Invalid value: "Shards": the group name must be a DNS-1123 label`},
		},
		"empty group name": {
			obj:     object("t", map[string]string{PipelineLabel: "p", GroupLabel: ""}, nil),
			wantErr: []string{`metadata.labels[sluice.dev/group]: Required value: the group name must not be empty`},
		},
		"after-group without a size": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AfterGroupAnnotation: "shards"}),
			wantErr: []string{`sluice.dev/after-group]: Invalid value: "shards": "shards": expected group=size, the group's name and how many tasks it has, e.g. "shards=1000"`},
		},
		"after-group size out of range": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AfterGroupAnnotation: "a=0, b=x, c=100001"}),
			wantErr: []string{`"a=0": the size of group a must be a whole number from 1 to 100000: the number of tasks labelled sluice.dev/group=a`, `"b=x": the size`, `"c=100001": the size`},
		},
		"after-group names a group twice": {
			obj:     object("t", map[string]string{PipelineLabel: "p"}, map[string]string{AfterGroupAnnotation: "a=2, a=3"}),
			wantErr: []string{`sluice.dev/after-group]: Duplicate value: "a"`},
		},
		"a task waits for its own group": {
			obj:     object("t", map[string]string{PipelineLabel: "p", GroupLabel: "a"}, map[string]string{AfterGroupAnnotation: "a=2"}),
			wantErr: []string{`a task cannot wait for its own group "a" (it is labelled sluice.dev/group=a)`},
		},
		"an after list too long for an annotation points to groups": {
			obj:     object("join", map[string]string{PipelineLabel: "p"}, map[string]string{AfterAnnotation: longAfter(10000)}),
			wantErr: []string{`metadata.annotations[sluice.dev/after]: Invalid value: "10000 task names, 606 KiB": an object's annotations hold at most 256 KiB in all; wait for that many tasks as a group instead: label each sluice.dev/group=NAME and set sluice.dev/after-group: NAME=10000`},
		},
		"every problem at once": {
			obj: object("t", map[string]string{PipelineLabel: "p", RunLabel: "R!"}, map[string]string{
				InputsAnnotation: "bad", OutputsAnnotation: "9lives",
			}),
			wantErr: []string{"sluice.dev/run", "sluice.dev/inputs", "sluice.dev/outputs"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, errs := Parse(tc.obj)
			if len(errs) != len(tc.wantErr) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tc.wantErr))
			}
			for i, want := range tc.wantErr {
				if !strings.Contains(errs[i].Error(), want) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), want)
				}
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Parse() (-want,+got):\n%s", diff)
				}
			}
		})
	}
}

// longAfter is an after list of n names of 61 characters or so.
func longAfter(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("shard-of-the-training-data-with-a-rather-long-name-%010d", i)
	}
	return strings.Join(names, ",")
}

func TestUpstreamsAndHeld(t *testing.T) {
	task := &Task{After: []string{"b", "a"}, Inputs: []Input{{Name: "x", Task: "c"}, {Name: "y", Task: "a"}}}
	if diff := cmp.Diff([]string{"a", "b", "c"}, task.Upstreams()); diff != "" {
		t.Errorf("Upstreams() (-want,+got):\n%s", diff)
	}
	if !task.Held() {
		t.Error("a task with upstreams must be held")
	}
	if (&Task{}).Held() {
		t.Error("a root task must not be held")
	}
	if !(&Task{When: "true"}).Held() {
		t.Error("a task with a condition must be held")
	}
	join := &Task{AfterGroups: []GroupWait{{Group: "shards", Size: 3}}}
	if !join.Held() || join.WaitsForGroup("shards") != 3 || join.WaitsForGroup("other") != 0 {
		t.Errorf("a task waiting for a group: Held() = %v, WaitsForGroup = %d, %d", join.Held(), join.WaitsForGroup("shards"), join.WaitsForGroup("other"))
	}
	if len(join.Upstreams()) != 0 {
		t.Errorf("Upstreams() = %v: group members are not named upstreams", join.Upstreams())
	}
}

func TestEnvNames(t *testing.T) {
	if got := InputEnv("processed-data"); got != "SLUICE_INPUT_PROCESSED_DATA" {
		t.Errorf("InputEnv = %q", got)
	}
	if got := OutputEnv("model"); got != "SLUICE_OUTPUT_MODEL" {
		t.Errorf("OutputEnv = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("p", "r", "t", "a,b", "d=a.x, e=b.y", "m:Model, n", "all-done", "sluice.dev/afer", "g", "h=3, i=1")
	f.Add("", "", "", ",,", "=.", ":", "", "sluice.dev/", "", "=,=0")
	f.Add("p", "p", "x", " x ", "x=x.x", "x:X", "any-failed", "sluice.dev/gpu", "x", "x=100000")
	f.Fuzz(func(t *testing.T, pipeline, run, task, after, inputs, outputs, trigger, extra, group, afterGroup string) {
		obj := object("obj", map[string]string{PipelineLabel: pipeline, RunLabel: run, TaskLabel: task, GroupLabel: group},
			map[string]string{AfterAnnotation: after, InputsAnnotation: inputs, OutputsAnnotation: outputs, TriggerAnnotation: trigger, extra: "v", AfterGroupAnnotation: afterGroup})
		got, errs := Parse(obj)
		if len(errs) > 0 {
			return
		}
		for _, w := range got.AfterGroups {
			if w.Group == "" || w.Group == got.Group || w.Size < 1 || w.Size > MaxGroupSize {
				t.Fatalf("task %q (group %q) waits for %+v", got.Name, got.Group, w)
			}
		}
		// A task that parses cleanly must be usable as-is by the webhook and
		// the controller: names are labels, artifact env names are unique, and
		// a task never waits on itself.
		for _, up := range got.Upstreams() {
			if up == got.Name || up == "" {
				t.Fatalf("task %q has upstream %q", got.Name, up)
			}
		}
		seen := map[string]bool{}
		for _, in := range got.Inputs {
			if seen[InputEnv(in.Name)] || in.Output == "" {
				t.Fatalf("input %+v repeats an env name or names no output", in)
			}
			seen[InputEnv(in.Name)] = true
		}
		if got.Run == "" || got.Name == "" || got.Pipeline == "" {
			t.Fatalf("clean parse left a name empty: %+v", got)
		}
	})
}

// BenchmarkParse parses a task that sets most keys.
func BenchmarkParse(b *testing.B) {
	obj := object("train", map[string]string{PipelineLabel: "churn", RunLabel: "r1", GroupLabel: "trainers"}, map[string]string{
		AfterAnnotation:      "validate, prep",
		AfterGroupAnnotation: "shards=1000",
		InputsAnnotation:     "dataset=prep.processed_data, stats=prep.stats",
		OutputsAnnotation:    "model:Model, metrics:Metrics",
		WhenAnnotation:       "tasks.prep.results.rows > 1000",
		GPUAnnotation:        "1",
		CPUAnnotation:        "4",
	})
	for b.Loop() {
		if _, errs := Parse(obj); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
