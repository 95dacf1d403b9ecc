package certs

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestMissingConfiguration checks that a missing webhook configuration
// keeps the replica unready and is named, that the certificate is served
// and the other configuration injected meanwhile, and that the replica
// becomes ready once the configuration is back.
func TestMissingConfiguration(t *testing.T) {
	cases := map[string]struct {
		present    client.Object
		missing    client.Object
		wantErr    string
		wantWrites map[string]int
	}{
		"mutating": {
			present:    makeValidating(nil),
			missing:    makeMutating(nil),
			wantErr:    "MutatingWebhookConfiguration sluice not found",
			wantWrites: map[string]int{"Secret": 1, "ValidatingWebhookConfiguration": 1},
		},
		"validating": {
			present:    makeMutating(nil),
			missing:    makeValidating(nil),
			wantErr:    "ValidatingWebhookConfiguration sluice not found",
			wantWrites: map[string]int{"Secret": 1, "MutatingWebhookConfiguration": 1},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			w := &writes{}
			c, raw := newClients(t, w, nil, makeSecret(nil), tc.present)
			r := newRotator(t, c)
			err := r.check(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("check = %v, want an error containing %q", err, tc.wantErr)
			}
			if err := r.ReadyCheck(nil); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ReadyCheck = %v, want an error containing %q", err, tc.wantErr)
			}
			if _, err := r.GetCertificate(&tls.ClientHelloInfo{}); err != nil {
				t.Errorf("GetCertificate: %v; the certificate should be served while a configuration is missing", err)
			}
			if diff := cmp.Diff(tc.wantWrites, w.get()); diff != "" {
				t.Errorf("Unexpected writes (-want,+got):\n%s", diff)
			}

			// The chart's configuration is restored, e.g. by helm upgrade.
			if err := raw.Create(ctx, tc.missing); err != nil {
				t.Fatal(err)
			}
			if err := r.check(ctx); err != nil {
				t.Fatalf("check after restoring the configuration: %v", err)
			}
			if err := r.ReadyCheck(nil); err != nil {
				t.Errorf("ReadyCheck: %v", err)
			}
			secret := getSecret(t, c)
			verifyInjected(t, c, secret.Data[CACertKey])
		})
	}
}
