// Package renewal drives renewals and the reconciler's schedule: Trigger
// handles the DynamoDB stream (a renewal timer deleted by TTL) and hands
// the domain to the reconciler; Sweeper is the reconciler on a schedule
// (every domain past its dueAt: renewals whose timer was late or lost,
// executions the engine lost or that ended without an outcome), re-asks
// ARI about windows that moved earlier, and emits MinDaysToExpiry.
//
// What a renewal and a sweeper run cost in DynamoDB, Step Functions and
// Lambda, measured offline and projected to 1,000,000 domains, is in
// docs/capacity.md; TestSweeperCapacity measures one sweep.
package renewal
