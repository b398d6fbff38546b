package certstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The sweeper's position in each shard's ARI re-check lives in the
// certificate table under its own partition. These items carry none of the
// index attributes, so no index and no domain query ever sees them.
const (
	sweepPK    = "SWEEP#ARI"
	attrCursor = "cursor"
)

func sweepKey(shard string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: avS(sweepPK), attrSK: avS("SHARD#" + shard)}
}

// CheckShard returns an error unless shard is one of Shards.
func CheckShard(shard string) error {
	if !slices.Contains(Shards(), shard) {
		return fmt.Errorf("shard %q is not one of \"00\"..\"15\"", shard)
	}
	return nil
}

// ARICursor returns where the last ARI re-check of shard stopped: a
// DueForRenewal cursor to resume from, or "" to start at the shard's
// beginning (never visited, or the last visit reached the end). A cursor
// this store can no longer read is dropped: the walk starts over.
func (s *Store) ARICursor(ctx context.Context, shard string) (string, error) {
	if err := CheckShard(shard); err != nil {
		return "", fmt.Errorf("read ARI re-check position: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: sweepKey(shard), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("read ARI re-check position of shard %s: %w", shard, err)
	}
	r := &itemReader{item: out.Item}
	cursor := r.s(attrCursor)
	if r.err != nil {
		return "", fmt.Errorf("read ARI re-check position of shard %s: %w", shard, r.err)
	}
	if _, err := dueStart(shard, cursor); err != nil {
		return "", nil
	}
	return cursor, nil
}

// SaveARICursor records where the ARI re-check of shard stopped; "" means
// it reached the shard's end, so the next visit starts at the beginning.
// Two sweeps saving at once leave one of their positions: at worst some
// certificates are re-checked twice or wait for the next pass.
func (s *Store) SaveARICursor(ctx context.Context, shard, cursor string) error {
	if err := CheckShard(shard); err != nil {
		return fmt.Errorf("save ARI re-check position: %w", err)
	}
	if _, err := dueStart(shard, cursor); err != nil {
		return fmt.Errorf("save ARI re-check position of shard %s: %w", shard, err)
	}
	item := sweepKey(shard)
	item[attrCursor] = avS(cursor)
	item[attrUpdatedAt] = avT(s.now())
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("save ARI re-check position of shard %s: %w", shard, err)
	}
	return nil
}
