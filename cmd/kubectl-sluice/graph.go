package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/sluice-dev/sluice/draw"
)

// graphFormats are graph's outputs.
var graphFormats = map[string]func(io.Writer, draw.Run) error{
	"ascii": draw.ASCII, "dot": draw.DOT, "mermaid": draw.Mermaid, "svg": draw.SVG,
}

func newGraphCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "graph RUN",
		Short: "Draw a run's task graph, with each task's phase",
		Long: `graph draws the run's tasks and what each waits for, upstreams first:
  -o ascii    layer by layer, each task with its phase, upstreams and
              condition, in 80 columns (the default)
  -o dot      Graphviz (dot -Tpng)
  -o mermaid  a Mermaid flowchart (GitHub and GitLab render it in Markdown)
  -o svg      an SVG picture, drawn here: no Graphviz needed
Phases are colors; a conditional task is dashed, a skipped one struck through.`,
		Example: `  kubectl sluice graph churn-demo
  kubectl sluice graph churn-demo -o svg > churn-demo.svg
  kubectl sluice graph churn-demo -o dot | dot -Tpng > churn-demo.png`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("graph: name one run (kubectl sluice graph RUN); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			render, ok := graphFormats[output]
			if !ok {
				return fmt.Errorf("graph: -o %s: the formats are ascii, dot, mermaid and svg", output)
			}
			c, ns, err := clusterClient(kube)
			if err != nil {
				return err
			}
			runs, err := readRuns(cmd.Context(), c, ns, args[0], time.Now())
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				return noRun(args[0], ns)
			}
			return render(cmd.OutOrStdout(), drawing(runs[0]))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "ascii", "ascii, dot, mermaid or svg")
	cmd.ValidArgsFunction = completeRunArgs(kube, false)
	return cmd
}

// drawing is what draw needs of a run.
func drawing(rs *runStatus) draw.Run {
	r := draw.Run{Namespace: rs.Namespace, Name: rs.Run, Outcome: rs.Outcome}
	for _, t := range rs.Tasks {
		r.Tasks = append(r.Tasks, draw.Task{Name: t.Task, Phase: t.Phase, When: t.when, Upstreams: slices.Clone(t.ups)})
	}
	return r
}
