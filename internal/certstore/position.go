package certstore

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/certflow/certflow/internal/table"
)

// ARICursor returns where the last ARI re-check of shard stopped: a
// DueForRenewal cursor to resume from, or "" to start at the shard's
// beginning (never visited, or the last visit reached the end). A cursor
// this store can no longer read is dropped: the walk starts over.
func (s *Store) ARICursor(ctx context.Context, shard string) (string, error) {
	if err := table.CheckShard(shard); err != nil {
		return "", fmt.Errorf("read ARI re-check position: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: table.SweepARIKey(shard), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("read ARI re-check position of shard %s: %w", shard, err)
	}
	r := table.NewReader(out.Item)
	cursor := r.S(table.AttrCursor)
	if r.Err() != nil {
		return "", fmt.Errorf("read ARI re-check position of shard %s: %w", shard, r.Err())
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
	if err := table.CheckShard(shard); err != nil {
		return fmt.Errorf("save ARI re-check position: %w", err)
	}
	if _, err := dueStart(shard, cursor); err != nil {
		return fmt.Errorf("save ARI re-check position of shard %s: %w", shard, err)
	}
	item := table.SweepARIKey(shard)
	item[table.AttrCursor] = table.S(cursor)
	item[table.AttrUpdatedAt] = table.T(s.now())
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("save ARI re-check position of shard %s: %w", shard, err)
	}
	return nil
}
