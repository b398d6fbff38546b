package offline

import (
	"os"
	"path/filepath"
	"testing"
)

func TestVenvTool(t *testing.T) {
	onPath := t.TempDir()
	t.Setenv("PATH", onPath)
	write := func(path string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(onPath, "cfn-lint"), 0o755)

	tests := []struct {
		name    string
		venv    os.FileMode // mode of cache/venv/bin/cfn-lint; 0: absent
		want    string      // "venv", "path"
		wantErr bool
	}{
		{name: "venv first", venv: 0o755, want: "venv"},
		{name: "not executable in the venv", venv: 0o644, want: "path"},
		{name: "no venv", want: "path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			inVenv := filepath.Join(cache, "venv", "bin", "cfn-lint")
			if tt.venv != 0 {
				write(inVenv, tt.venv)
			}
			got, err := venvTool(cache, "cfn-lint")
			want := map[string]string{"venv": inVenv, "path": filepath.Join(onPath, "cfn-lint")}[tt.want]
			if err != nil || got != want {
				t.Errorf("venvTool(%s, cfn-lint) = %q, %v; want %q", cache, got, err, want)
			}
		})
	}
	if got, err := venvTool(t.TempDir(), "moto_server"); err == nil {
		t.Errorf("venvTool for a tool installed nowhere = %q, want an error", got)
	}
}
