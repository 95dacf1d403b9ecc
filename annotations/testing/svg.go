package testing

import (
	"encoding/xml"
	"errors"
	"io"
)

// SVGTasks reads back the tasks of an SVG that draw.SVG wrote: each
// <g data-task=NAME data-phase=PHASE> group, name to phase. It fails when
// the document is not well-formed XML.
func SVGTasks(r io.Reader) (map[string]string, error) {
	tasks := map[string]string{}
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return tasks, nil
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "g" {
			continue
		}
		var task, phase string
		for _, a := range se.Attr {
			switch a.Name.Local {
			case "data-task":
				task = a.Value
			case "data-phase":
				phase = a.Value
			}
		}
		if task != "" {
			tasks[task] = phase
		}
	}
}
