package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/certflow/certflow/offline"
	"github.com/certflow/certflow/offline/template"
)

// validateASL runs asl-validator on every state machine of template.yaml,
// after DefinitionSubstitutions with the template's defaults: the definition
// exactly as it is deployed.
func validateASL(ctx context.Context) error {
	tools, err := offline.FindTools("")
	if tools == nil {
		return err
	}
	if err := tools.NodeReady(); err != nil {
		return err
	}
	tmpl, err := template.Load(tools.TemplatePath(), template.Options{})
	if err != nil {
		return err
	}
	machines, err := tmpl.StateMachines()
	if err != nil {
		return err
	}
	if len(machines) == 0 {
		return errors.New("template.yaml has no state machine")
	}
	dir, err := os.MkdirTemp("", "certflow-asl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	validator := filepath.Join(tools.NodeModules, "asl-validator", "dist", "bin", "asl-validator.js")
	var failed []error
	for _, m := range machines {
		path := filepath.Join(dir, m.Name+".asl.json")
		if err := os.WriteFile(path, m.Definition, 0o644); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, tools.Node, validator, "--json-path", path).CombinedOutput()
		if err != nil {
			failed = append(failed, fmt.Errorf("asl-validator: %s is invalid: %v\n%s", m.Name, err, out))
			continue
		}
		fmt.Printf("asl-validator: %s is valid\n", m.Name)
	}
	return errors.Join(failed...)
}
