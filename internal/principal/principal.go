// Package principal names who calls certflow's HTTP API: the IAM principal
// API Gateway authenticated (the route's AWS_IAM authorizer puts it in
// requestContext.authorizer.iam.userArn), in a canonical form that the
// deployment's lists of principals (who may fetch keys from /sni, who may
// act for tenants) are matched against.
//
// Canonical form: a role session (arn:aws:sts::<account>:assumed-role/<role>/<session>)
// is its role, arn:aws:iam::<account>:role/<role>; a role ARN with a path
// (role/edge/<role>) loses the path, which a session's ARN does not carry
// and which role names do not need (they are unique in an account). Every
// other ARN (users with their paths, the account root, federated users) is
// kept as it is.
package principal

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// ARN is a principal in canonical form.
type ARN string

// ErrAnonymous means a request carries no IAM identity: its route has no
// IAM authorizer (a misconfigured API), or it did not come through API
// Gateway.
var ErrAnonymous = errors.New("principal: the request carries no IAM identity")

// FromRequest returns the canonical principal that signed req.
func FromRequest(req events.APIGatewayV2HTTPRequest) (ARN, error) {
	a := req.RequestContext.Authorizer
	if a == nil || a.IAM == nil || a.IAM.UserARN == "" {
		return "", ErrAnonymous
	}
	p, err := Parse(a.IAM.UserARN)
	if err != nil {
		return "", fmt.Errorf("caller: %w", err)
	}
	return p, nil
}

// maxARN bounds the length of an ARN read from configuration or a request.
const maxARN = 2048

// Parse returns the canonical form of an IAM or STS principal ARN.
func Parse(s string) (ARN, error) {
	if len(s) > maxARN {
		return "", fmt.Errorf("principal ARN is longer than %d bytes", maxARN)
	}
	// arn:<partition>:<service>::<account>:<resource>
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[3] != "" || !isAccount(parts[4]) || parts[5] == "" ||
		strings.ContainsAny(s, " ,\t\r\n") {
		return "", fmt.Errorf("%q is not an IAM principal ARN (arn:aws:iam::<account>:role/<name>)", truncate(s))
	}
	partition, service, account, resource := parts[1], parts[2], parts[4], parts[5]
	switch service {
	case "sts":
		if rest, ok := strings.CutPrefix(resource, "assumed-role/"); ok {
			role, session, ok := strings.Cut(rest, "/")
			if !ok || role == "" || session == "" {
				return "", fmt.Errorf("%q is not a role session ARN (assumed-role/<role>/<session>)", truncate(s))
			}
			return roleARN(partition, account, role), nil
		}
		return ARN(s), nil
	case "iam":
		if rest, ok := strings.CutPrefix(resource, "role/"); ok {
			name := rest[strings.LastIndex(rest, "/")+1:]
			if name == "" {
				return "", fmt.Errorf("%q names no role", truncate(s))
			}
			return roleARN(partition, account, name), nil
		}
		return ARN(s), nil
	}
	return "", fmt.Errorf("%q is not an IAM or STS principal ARN", truncate(s))
}

func roleARN(partition, account, name string) ARN {
	return ARN("arn:" + partition + ":iam::" + account + ":role/" + name)
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// List is a set of principals the deployment names. The zero value holds
// no one.
type List []ARN

// ParseList reads a comma-separated list of principal ARNs; blanks around
// entries and empty entries are ignored. An entry that is not a principal
// ARN is an error naming it.
func ParseList(s string) (List, error) {
	var out List
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p, err := Parse(e)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Contains reports whether p is in l.
func (l List) Contains(p ARN) bool { return p != "" && slices.Contains(l, p) }

// maxEcho bounds how much of a bad ARN an error quotes.
const maxEcho = 128

func truncate(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho] + "…"
}
