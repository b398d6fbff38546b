package certstore

import "github.com/certflow/certflow/internal/failure"

func failureDetail() failure.Detail {
	return failure.Detail{Code: failure.CodeAccountPaused, Message: "paused", UnpauseURL: "https://ca.example/unpause"}
}
