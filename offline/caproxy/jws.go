package caproxy

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// Op names an ACME operation as the proxy recognises it from a request's
// path and JWS payload.
type Op string

// The operations of RFC 8555 (and RFC 9773's renewalInfo) the proxy tells
// apart.
const (
	OpDirectory     Op = "directory"
	OpNonce         Op = "newNonce"
	OpNewAccount    Op = "newAccount"
	OpAccount       Op = "account"   // POST to an account URL: update or POST-as-GET
	OpOrderList     Op = "orderList" // POST-as-GET of an account's orders
	OpKeyChange     Op = "keyChange"
	OpNewOrder      Op = "newOrder"
	OpOrder         Op = "order"       // POST-as-GET of an order
	OpAuthz         Op = "authz"       // POST-as-GET of an authorization
	OpAuthzUpdate   Op = "authzUpdate" // POST with a payload: deactivation
	OpChallenge     Op = "challenge"   // POST {}: the client asks the CA to validate
	OpChallengePoll Op = "challengePoll"
	OpFinalize      Op = "finalize"
	OpCertificate   Op = "certificate" // POST-as-GET of a certificate chain
	OpRevoke        Op = "revokeCert"
	OpRenewalInfo   Op = "renewalInfo"
	OpOther         Op = "other" // Pebble's non-ACME endpoints, unknown paths
)

// Pebble's endpoint paths (wfe/wfe.go of Pebble v2.10.0). The ones ending
// in "/" are prefixes of resource URLs.
const (
	pathDirectory   = "/dir"
	pathNonce       = "/nonce-plz"
	pathNewAccount  = "/sign-me-up"
	pathAccount     = "/my-account/"
	pathNewOrder    = "/order-plz"
	pathOrder       = "/my-order/"
	pathFinalize    = "/finalize-order/"
	pathAuthz       = "/authZ/"
	pathChallenge   = "/chalZ/"
	pathCertificate = "/certZ/"
	pathRevoke      = "/revoke-cert"
	pathKeyChange   = "/rollover-account-key"
	pathOrderList   = "/list-orderz/"
	pathRenewalInfo = "/draft-ietf-acme-ari-03/renewalInfo"
)

// call is what the proxy learned from one request.
type call struct {
	op      Op
	account string // the JWS kid: the account URL; empty for newAccount and GETs
	order   *orderRequest
}

// orderRequest is the payload of a newOrder request (RFC 8555 section
// 7.4, RFC 9773 section 5 for replaces, the ACME profiles draft for profile).
type orderRequest struct {
	Identifiers []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"identifiers"`
	Replaces string `json:"replaces"`
	Profile  string `json:"profile"`
}

// values returns the identifier values, sorted.
func (o *orderRequest) values() []string {
	v := make([]string, 0, len(o.Identifiers))
	for _, id := range o.Identifiers {
		v = append(v, id.Value)
	}
	slices.Sort(v)
	return v
}

// classify names the operation of a request to Pebble. A body that is not
// a flattened JWS leaves the account empty; the path still decides.
func classify(method, path string, body []byte) call {
	var c call
	var payload []byte
	isJWS := false
	if method == http.MethodPost {
		c.account, payload, isJWS = parseJWS(body)
	}
	postAsGet := isJWS && len(payload) == 0
	switch {
	case path == pathDirectory:
		c.op = OpDirectory
	case path == pathNonce:
		c.op = OpNonce
	case path == pathNewAccount:
		c.op = OpNewAccount
	case path == pathNewOrder:
		c.op = OpNewOrder
		var o orderRequest
		if json.Unmarshal(payload, &o) == nil {
			c.order = &o
		} else {
			c.order = &orderRequest{}
		}
	case path == pathRevoke:
		c.op = OpRevoke
	case path == pathKeyChange:
		c.op = OpKeyChange
	case strings.HasPrefix(path, pathRenewalInfo):
		c.op = OpRenewalInfo
	case strings.HasPrefix(path, pathAccount):
		c.op = OpAccount
	case strings.HasPrefix(path, pathOrderList):
		c.op = OpOrderList
	case strings.HasPrefix(path, pathFinalize):
		c.op = OpFinalize
	case strings.HasPrefix(path, pathOrder):
		c.op = OpOrder
	case strings.HasPrefix(path, pathAuthz):
		c.op = OpAuthz
		if !postAsGet {
			c.op = OpAuthzUpdate
		}
	case strings.HasPrefix(path, pathChallenge):
		c.op = OpChallenge
		if postAsGet {
			c.op = OpChallengePoll
		}
	case strings.HasPrefix(path, pathCertificate):
		c.op = OpCertificate
	default:
		c.op = OpOther
	}
	return c
}

// parseJWS reads the kid and the payload of a JWS in flattened JSON
// serialization (RFC 8555 section 6.2, RFC 7515 section 7.2.2). ok is false
// when body is not one.
func parseJWS(body []byte) (kid string, payload []byte, ok bool) {
	var jws struct {
		Protected string  `json:"protected"`
		Payload   *string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil || jws.Payload == nil {
		return "", nil, false
	}
	protected, err := base64.RawURLEncoding.DecodeString(jws.Protected)
	if err != nil {
		return "", nil, false
	}
	var header struct {
		KID string `json:"kid"`
	}
	if json.Unmarshal(protected, &header) != nil {
		return "", nil, false
	}
	payload, err = base64.RawURLEncoding.DecodeString(*jws.Payload)
	if err != nil {
		return "", nil, false
	}
	return header.KID, payload, true
}
