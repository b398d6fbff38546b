package wiring

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/certflow/certflow/internal/envelope"
	"github.com/certflow/certflow/offline/template"
)

// TestKeyPolicy computes, from template.yaml, what every principal may do
// with the KMS key that seals certificate and ACME account keys, for each
// action and encryption-context purpose: by the key policy, by the
// principal's IAM policies, and in effect as KMS decides (a key policy
// statement naming the principal grants by itself; one naming the account
// grants what the principal's IAM policies also allow; an explicit deny in
// either wins). The two layers must agree for the functions, and the effect
// must be the expected table: each function its purpose only, the account
// administration without use.
func TestKeyPolicy(t *testing.T) {
	tmpl := loadTemplate(t)
	key, ok := tmpl.Resource("CertificateKey")
	if !ok || key.Type != "AWS::KMS::Key" {
		t.Fatal("template has no AWS::KMS::Key CertificateKey")
	}
	var keyProps struct {
		KeyPolicy policyDocument
	}
	if err := json.Unmarshal(key.Properties, &keyProps); err != nil {
		t.Fatal(err)
	}
	keyARN := fmt.Sprintf("arn:%s:offline:%s:%s:CertificateKey", template.Partition, template.Region, template.AccountID)
	root := fmt.Sprintf("arn:%s:iam::%s:root", template.Partition, template.AccountID)

	// Every function's role, with its IAM policies: the function's inline
	// Policies and the AWS::IAM::Policy resources attached to its role.
	iam := map[string][]statement{}
	fns, err := tmpl.Functions()
	if err != nil {
		t.Fatal(err)
	}
	for id, fn := range fns {
		var policies []*policyDocument
		if len(fn.Policies) > 0 {
			if err := json.Unmarshal(fn.Policies, &policies); err != nil {
				t.Fatalf("%s Policies: %v", id, err)
			}
		}
		for _, p := range policies {
			if p != nil {
				iam[id+"Role"] = append(iam[id+"Role"], p.Statement...)
			}
		}
	}
	for _, id := range tmpl.IDs("AWS::IAM::Policy") {
		r, _ := tmpl.Resource(id)
		var p struct {
			Roles          []string
			PolicyDocument policyDocument
		}
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for _, role := range p.Roles {
			if _, ok := iam[role]; !ok {
				t.Errorf("%s is attached to %s, not a function's role", id, role)
			}
			iam[role] = append(iam[role], p.PolicyDocument.Statement...)
		}
	}
	// Two principals beside the functions: the account's root user (not
	// subject to IAM policies), and an administrator role whose IAM
	// policy allows every KMS action on every key (AdministratorAccess).
	const admin = "AdministratorRole"
	iam[admin] = []statement{{Effect: "Allow", Action: "kms:*", Resource: "*"}}
	principals := slices.Sorted(func(yield func(string) bool) {
		for p := range iam {
			if !yield(p) {
				return
			}
		}
	})
	principals = append(principals, "root")

	actions := []string{"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:Encrypt", "kms:ReEncryptFrom", "kms:CreateGrant"}
	purposes := []string{envelope.PurposeCertificateKey, envelope.PurposeAccountKey, "other"}
	allowed := map[string]bool{
		"IssueFunctionRole kms:GenerateDataKey " + envelope.PurposeCertificateKey: true,
		"IssueFunctionRole kms:GenerateDataKey " + envelope.PurposeAccountKey:     true,
		"IssueFunctionRole kms:Decrypt " + envelope.PurposeAccountKey:             true,
		"ApiFunctionRole kms:Decrypt " + envelope.PurposeAccountKey:               true,
		"ApiFunctionRole kms:GenerateDataKey " + envelope.PurposeAccountKey:       true,
		"DeliveryFunctionRole kms:Decrypt " + envelope.PurposeCertificateKey:      true,
	}
	adminActions := []string{"kms:DescribeKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:EnableKeyRotation"}

	// The table: one line per principal and action, one column per
	// purpose, each cell "effect (key policy/role policies)"; principals
	// denied everything are listed on one line.
	var table strings.Builder
	fmt.Fprintf(&table, "%-22s %-36s", "principal", "action")
	for _, p := range purposes {
		fmt.Fprintf(&table, " %-28s", "purpose="+p)
	}
	table.WriteString("\n")
	var deniedAll []string
	for _, who := range principals {
		arn := template.RoleARN(who)
		if who == "root" {
			arn = root
		}
		var lines strings.Builder
		granted := false
		for _, action := range actions {
			fmt.Fprintf(&lines, "%-22s %-36s", who, action)
			for _, purpose := range purposes {
				req := request{principal: arn, action: action, resource: keyARN, context: map[string]string{"kms:EncryptionContext:" + envelope.ContextPurpose: purpose}}
				direct, viaAccount, keyDeny := keyProps.KeyPolicy.evaluateKey(t, req, root)
				roleAllows, roleDeny := evaluate(t, iam[who], req)
				effect := !keyDeny && !roleDeny && (direct || (viaAccount && (roleAllows || who == "root")))
				granted = granted || effect
				fmt.Fprintf(&lines, " %-28s", fmt.Sprintf("%s (key %s/role %s)", word(effect), word(direct || viaAccount), word(roleAllows)))
				want := allowed[who+" "+action+" "+purpose]
				if effect != want {
					t.Errorf("%s %s (purpose %s): effect %s, want %s", who, action, purpose, word(effect), word(want))
				}
				if strings.HasSuffix(who, "FunctionRole") && direct != roleAllows {
					t.Errorf("%s %s (purpose %s): the key policy says %s, the role's policies %s; both layers must grant the same",
						who, action, purpose, word(direct), word(roleAllows))
				}
			}
			lines.WriteString("\n")
		}
		for _, action := range adminActions {
			req := request{principal: arn, action: action, resource: keyARN}
			direct, viaAccount, keyDeny := keyProps.KeyPolicy.evaluateKey(t, req, root)
			roleAllows, roleDeny := evaluate(t, iam[who], req)
			effect := !keyDeny && !roleDeny && (direct || (viaAccount && (roleAllows || who == "root")))
			if want := who == "root" || who == admin; effect != want {
				t.Errorf("%s %s: effect %s, want %s (the account administers the key, its functions do not)", who, action, word(effect), word(want))
			}
			if effect {
				granted = true
				fmt.Fprintf(&lines, "%-22s %-36s %s\n", who, action, "allow (no purpose: administration)")
			}
		}
		if granted {
			table.WriteString(lines.String())
		} else {
			deniedAll = append(deniedAll, who)
		}
	}
	fmt.Fprintf(&table, "denied every action and purpose: %s\n", strings.Join(deniedAll, ", "))
	t.Logf("effective permissions on CertificateKey (key: the key policy allows, directly or through the account; role: the principal's IAM policies allow):\n%s", table.String())
}

func word(b bool) string {
	if b {
		return "allow"
	}
	return "deny"
}

// policyDocument is an IAM or key policy, intrinsic functions resolved.
type policyDocument struct {
	Statement []statement
}

type statement struct {
	Sid       string
	Effect    string
	Principal any
	Action    any
	NotAction any
	Resource  any
	Condition map[string]map[string]any
}

// request is one KMS request to evaluate.
type request struct {
	principal string
	action    string
	resource  string
	context   map[string]string // condition keys
}

// evaluateKey evaluates the key policy for req: whether a statement naming
// the principal allows it, whether one naming the account (root) does, and
// whether one denies it.
func (d policyDocument) evaluateKey(t *testing.T, req request, root string) (direct, viaAccount, deny bool) {
	for _, s := range d.Statement {
		if !s.matches(t, req) {
			continue
		}
		for _, p := range principalsOf(t, s.Principal) {
			switch {
			case s.Effect == "Deny" && (p == "*" || p == req.principal || p == root):
				deny = true
			case s.Effect == "Allow" && p == req.principal:
				direct = true
			case s.Effect == "Allow" && p == root:
				viaAccount = true
			case s.Effect == "Allow" && p == "*":
				t.Errorf("key policy statement %q allows every principal", s.Sid)
			}
		}
	}
	return direct, viaAccount, deny
}

// evaluate evaluates IAM policy statements for req: allowed, denied.
func evaluate(t *testing.T, statements []statement, req request) (allow, deny bool) {
	for _, s := range statements {
		if !s.matches(t, req) {
			continue
		}
		switch s.Effect {
		case "Allow":
			allow = true
		case "Deny":
			deny = true
		}
	}
	return allow, deny
}

// matches reports whether s covers req's action, resource and conditions
// (its principal aside). Policy elements the evaluator does not know fail
// the test rather than being ignored.
func (s statement) matches(t *testing.T, req request) bool {
	if s.NotAction != nil {
		t.Fatalf("statement %q uses NotAction, which this test does not evaluate", s.Sid)
	}
	if !matchAny(asStrings(s.Action), req.action, true) || !matchAny(asStrings(s.Resource), req.resource, false) {
		return false
	}
	for op, conds := range s.Condition {
		if op != "StringEquals" {
			t.Fatalf("statement %q uses condition %s, which this test does not evaluate", s.Sid, op)
		}
		for key, want := range conds {
			got, ok := req.context[key]
			if !ok || !slices.Contains(asStrings(want), got) {
				return false
			}
		}
	}
	return true
}

// matchAny reports whether a pattern of patterns (IAM wildcards) matches
// s; actions match case-insensitively.
func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if ok, _ := path.Match(p, s); ok || p == "*" {
			return true
		}
	}
	return false
}

func principalsOf(t *testing.T, p any) []string {
	switch p := p.(type) {
	case string:
		return []string{p}
	case map[string]any:
		var out []string
		for k, v := range p {
			if k != "AWS" {
				t.Fatalf("principal type %s is not evaluated by this test", k)
			}
			out = append(out, asStrings(v)...)
		}
		return out
	}
	return nil
}
