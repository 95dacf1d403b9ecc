package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/kfp"
)

func newImportCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Turn pipelines written for other systems into sluice Jobs",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImportKFPCommand(kube))
	return cmd
}

func newImportKFPCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var (
		params, imageMap          []string
		paramsFile, run, launcher string
		explainOnly               bool
	)
	cmd := &cobra.Command{
		Use:   "kfp FILE",
		Short: "Turn a compiled Kubeflow pipeline (KFP v2 IR YAML) into labelled Jobs",
		Long: `import kfp reads a pipeline compiled by the Kubeflow Pipelines SDK
(kfp.compiler.Compiler().compile, schemaVersion 2.1.0, with its optional
platforms document) and writes one labelled batch/v1 Job per container
task, all in one run, for kubectl apply:

- nested pipelines are flattened and static dsl.ParallelFor loops unrolled
  (task-0, task-1, ...); dsl.If/Elif/Else become sluice.dev/when over the
  upstreams' results; dsl.ExitHandler and ignore_upstream_failure become
  trigger all-done; dsl.OneOf and dsl.Collected over static loops work;
- artifacts live on the run's volume, output parameters travel as results
  and as files; a task whose command needs values known only at run time
  ({{$}}, an upstream's output) runs through sluice's KFP launcher,
  delivered by an init container (--launcher-image);
- resources, accelerators, retries and the kfp-kubernetes settings
  (secrets, config maps, volumes, node selectors, tolerations, ...) carry
  over.

What sluice cannot run (a loop over a task's output, importers,
PipelineTaskFinalStatus, workspaces, settings taken from task outputs) is
refused with an error naming the KFP task and the feature. What maps only
approximately is said on standard error.`,
		Example: `  kubectl sluice import kfp pipeline.yaml | kubectl apply -f -
  kubectl sluice import kfp pipeline.yaml -p learning_rate=0.01 --run churn-7 -n ml | kubectl apply -f -
  kubectl sluice import kfp pipeline.yaml --image-map python:3.11=registry.local/python:3.11
  kubectl sluice import kfp pipeline.yaml --explain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			fail := func(err error) error { return fmt.Errorf("%s: %w", file, err) }
			data, err := readInput(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			p, err := kfp.Decode(data)
			if err != nil {
				return fail(err)
			}
			flags, err := kfp.ParseParamFlags(params)
			if err != nil {
				return fail(err)
			}
			var fileParams map[string]any
			if paramsFile != "" {
				b, err := os.ReadFile(paramsFile)
				if err != nil {
					return err
				}
				if fileParams, err = kfp.ParseParamsFile(b); err != nil {
					return fmt.Errorf("%s: %w", paramsFile, err)
				}
			}
			var defs map[string]kfp.ParameterSpec
			if in := p.Spec.Root.InputDefinitions; in != nil {
				defs = in.Parameters
			}
			values, err := kfp.ResolveParams(defs, flags, fileParams)
			if err != nil {
				return fail(err)
			}
			images, err := parseImageMap(imageMap)
			if err != nil {
				return err
			}
			if run == "" {
				run = kfp.DNSName(p.Spec.PipelineInfo.Name + "-" + time.Now().UTC().Format("20060102-150405"))
			}
			ns := ""
			if kube.Namespace != nil {
				ns = *kube.Namespace
			}
			res, err := kfp.Convert(p, kfp.Options{Run: run, Namespace: ns, Params: values, ImageMap: images, LauncherImage: launcher})
			if err != nil {
				return fail(err)
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			var out bytes.Buffer
			if explainOnly {
				writeExplain(&out, res)
			} else if err := writeJobs(&out, res); err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "a pipeline parameter, name=value (read by its type: 3, 0.5, true, a JSON list or object); repeatable")
	cmd.Flags().StringVar(&paramsFile, "params-file", "", "a YAML or JSON file mapping parameter names to values (-p wins)")
	cmd.Flags().StringVar(&run, "run", "", "the run id (default: the pipeline's name and the time, UTC)")
	cmd.Flags().StringArrayVar(&imageMap, "image-map", nil, "use image TO where the pipeline names FROM, FROM=TO; repeatable")
	cmd.Flags().StringVar(&launcher, "launcher-image", "sluice/kfp-launcher:"+version, "the image of sluice's KFP launcher, for tasks that need it")
	cmd.Flags().BoolVar(&explainOnly, "explain", false, "print how each KFP task becomes a sluice task (upstreams, trigger, when) instead of the Jobs")
	return cmd
}

// readInput reads a file, or standard input for "-".
func readInput(stdin io.Reader, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(file)
}

func parseImageMap(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		from, to, ok := strings.Cut(p, "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("--image-map %q: expected FROM=TO, e.g. --image-map alpine=localhost/alpine:3", p)
		}
		out[from] = to
	}
	return out, nil
}

// writeJobs writes the Jobs as YAML documents, without the fields the API
// server fills in.
func writeJobs(w io.Writer, res *kfp.Result) error {
	for i, j := range res.Jobs {
		js, err := json.Marshal(j)
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil {
			return err
		}
		prune(obj)
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// prune drops what a Go object marshals without being set: status, a null
// creationTimestamp, empty metadata and resources.
func prune(m map[string]any) {
	delete(m, "status")
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			if k == "creationTimestamp" {
				delete(m, k)
			}
		case map[string]any:
			prune(x)
			if len(x) == 0 && (k == "metadata" || k == "resources") {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

// writeExplain writes one line per sluice task: the KFP task it comes
// from, its upstreams, trigger and condition.
func writeExplain(w io.Writer, res *kfp.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KFP TASK\tSLUICE TASK\tUPSTREAMS\tTRIGGER\tWHEN\tLAUNCHER")
	for _, s := range res.Steps {
		trigger := s.Trigger
		if trigger == "" {
			trigger = "all-succeeded"
		}
		launcher := "no"
		if s.Launcher {
			launcher = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.KFPTask, s.Task, orDash(strings.Join(s.Upstreams, ",")), trigger, orDash(s.When), launcher)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
