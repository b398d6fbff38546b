// Package renewal starts certificate renewals: Trigger handles the
// DynamoDB stream (a renewal timer deleted by TTL), Sweeper is the
// scheduled safety net (timers TTL deletes late, renewals whose lease ran
// out, ARI windows that moved earlier) and emits MinDaysToExpiry.
//
// # DynamoDB cost
//
// Figures use DynamoDB's accounting: a read unit covers 4 KB of strongly
// consistent read (half a unit eventually consistent; index queries are
// always eventually consistent), rounded up per request, a Query's size
// being the sum of the items it returns; a write unit covers 1 KB of the
// larger of the old and new item; a transactional write costs twice; a GSI
// whose key changes costs a delete and a put, one whose projected
// attributes change costs one write; deletions by TTL and stream reads by
// Lambda are free. Item sizes (attribute names + values) for a 20-character
// domain with one extra SAN and a Let's Encrypt ECDSA certificate:
//
//   - certificate item: about 4.2 KB (certPEM leaf + intermediate 3.2 KB,
//     sealed key 0.35 KB, about 30 other attributes 0.6 KB);
//   - ByRenewal entry: 280 bytes (pk 29, sk 6, shard 7, renewAt 27,
//     domain 26, serial 42, ariCertID 61, notAfter 28, sans 53);
//   - ByExpiry entry (KEYS_ONLY): 70 bytes;
//   - timer item: about 210 bytes.
//
// Per renewal, this package's share: the trigger reads the certificate item
// (GetItem, eventually consistent, 4.2 KB: 1 RRU) and leases it (UpdateItem
// of renewAt, updatedAt, version: 5 WRU for the item, 2 WRU for ByRenewal,
// whose key renewAt changes, 1 WRU for ByStatus, which projects renewAt and
// updatedAt, 0 for ByExpiry: 8 WRU). A renewal the sweeper starts instead
// costs its share of the index query (below) plus the same 8 WRU lease. The
// rest of the renewal belongs to the state machine and the issue function;
// from certstore.SaveIssued's transaction: certificate update 2 × 5 WRU,
// timer put 2 × 1 WRU, alias puts 2 × 1 WRU per extra SAN, index writes 2
// (ByRenewal key) + 2 (ByExpiry key) + 1 (ByStatus) WRU: 19 WRU with one
// extra SAN; HTTP-01 adds per name a challenge put (1 WRU), the
// challenge function's strongly consistent read (1 RRU) and the delete
// (1 WRU). A renewal of a two-name certificate is therefore about 3 RRU and
// 31 WRU, plus whatever preflight, budget and outcome steps read and write.
//
// Per sweeper run (hourly, N active certificates whose renewals are spread
// evenly over 60 days, so N/1440 fall due per hour):
//
//   - MinDaysToExpiry: 16 ByExpiry queries with Limit 1, 0.5 RRU each:
//     8 RRU.
//   - Due renewals: 16 ByRenewal queries (shard = s AND renewAt <= now);
//     an empty or small page still costs 0.5 RRU. N = 100,000: 69 items per
//     run, 4.3 per shard (1.2 KB): 16 × 0.5 = 8 RRU. N = 1,000,000: 694
//     items per run, 43 per shard (12.2 KB, 4 units): 16 × 2 = 32 RRU. When
//     the trigger has already leased them, the pages are empty (8 RRU); when
//     the sweeper starts them all (TTL running late), it adds 8 WRU each:
//     555 WRU (100,000) or 5,552 WRU (1,000,000) per run.
//   - ARI re-check of one shard (N/16 entries in pages of 100, 28 KB =
//     7 units = 3.5 RRU a page): N = 100,000: 6,250 entries, 63 pages, about
//     219 RRU and 6,250 ARI requests. N = 1,000,000: capped at
//     MaxARIChecks = 10,000 of the shard's 62,500 entries, 100 pages,
//     350 RRU and 10,000 ARI requests. Each renewal moved earlier costs
//     certstore.MoveTimer: a strongly consistent read (2 RRU) and a
//     transaction (2 × 5 + 2 × 1 WRU) plus index writes (2 + 1 WRU): 15 WRU.
//
// In total about 235 RRU per run at 100,000 certificates and 390 RRU at
// 1,000,000 (about 5,600 and 9,400 RRU a day), writes only for renewals the
// sweeper starts or moves. The run never scans the table.
package renewal
