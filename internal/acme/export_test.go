package acme

import (
	"context"
	"net/http"
)

// WrapTransport lets a test watch the requests c sends to the CA.
func WrapTransport(c *Client, wrap func(http.RoundTripper) http.RoundTripper) {
	c.poster.http.Transport = wrap(c.poster.http.Transport)
}

// DeactivateAccount deactivates c's account at the CA (RFC 8555 section
// 7.3.6), as an operator or the CA might.
func DeactivateAccount(ctx context.Context, c *Client) error {
	id := c.identity()
	_, err := c.poster.postJSON(ctx, id.signer(), id.uri(), map[string]string{"status": "deactivated"})
	return err
}
