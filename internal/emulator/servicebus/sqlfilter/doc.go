// Package sqlfilter holds what Service Bus subscription rules evaluate: the
// filter view of a message (system and application properties), shared by
// correlation filters and SQL filters.
package sqlfilter
