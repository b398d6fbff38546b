package certclient_test

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/certflow/certflow/certclient"
)

// An edge proxy serving HTTPS for every domain certflow manages. The
// delivery endpoint is behind IAM authorisation, so requests are signed.
func Example() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	c, err := certclient.New(certclient.Config{
		BaseURL:    "https://delivery.certflow.example",
		HTTPClient: &http.Client{Transport: http.DefaultTransport},
		MaxEntries: 50_000,
		Timeout:    2 * time.Second,
		RequestSigner: func(req *http.Request) error {
			// Sign with SigV4 here, for example with
			// aws-sdk-go-v2/aws/signer/v4.Signer.SignHTTP.
			return nil
		},
		Hooks: certclient.Hooks{
			OnError: func(name string, err error) {
				logger.Error("certificate fetch failed", "domain", name, "error", err)
			},
		},
	})
	if err != nil {
		logger.Error("configure certificate client", "error", err)
		return
	}
	srv := &http.Server{
		Addr:      "127.0.0.1:8443",
		TLSConfig: &tls.Config{GetCertificate: c.GetCertificate},
	}
	_ = srv // srv.ListenAndServeTLS("", "") serves with certificates from certflow.
}
