package records

import "time"

// metaNodeSeconds is a record blob's node time in metadata, so that a
// listing (Recount) can total the cost without reading the records.
const metaNodeSeconds = "nodeseconds"

// Cost is the node time a task used and what it cost by the configured
// prices: node seconds = wall seconds × requiredSlots / slots per node
// (the share of a node the task held). Which kind of node ran the task is
// not known when Sweep settles it (the node may be gone), so both
// estimates are given.
type Cost struct {
	WallSeconds   float64 `json:"wallSeconds"`
	RequiredSlots int     `json:"requiredSlots"`
	SlotsPerNode  int     `json:"slotsPerNode"`
	NodeSeconds   float64 `json:"nodeSeconds"`
	// Spot and Dedicated are the estimates at FFPIPE_NODE_PRICE_PER_HOUR's
	// prices (nil when that price is not set).
	Spot      *float64 `json:"spot,omitempty"`
	Dedicated *float64 `json:"dedicated,omitempty"`
}

// Prices are node prices per hour (0: not set; FFPIPE_NODE_PRICE_PER_HOUR).
type Prices struct {
	Spot, Dedicated float64
}

// Budgeted is the price a budget counts: dedicated (an upper bound),
// or spot when only that is set.
func (p Prices) Budgeted() float64 {
	if p.Dedicated > 0 {
		return p.Dedicated
	}
	return p.Spot
}

// NewCost is the cost of a task that ran from start to end holding
// required of perNode slots (0 counts as 1). ok is false when the times
// are unknown.
func NewCost(start, end time.Time, required, perNode int, p Prices) (Cost, bool) {
	if start.IsZero() || end.IsZero() || end.Before(start) {
		return Cost{}, false
	}
	required, perNode = max(required, 1), max(perNode, 1)
	c := Cost{WallSeconds: end.Sub(start).Seconds(), RequiredSlots: required, SlotsPerNode: perNode}
	c.NodeSeconds = c.WallSeconds * float64(required) / float64(perNode)
	price := func(perHour float64) *float64 {
		if perHour <= 0 {
			return nil
		}
		v := c.NodeSeconds / 3600 * perHour
		return &v
	}
	c.Spot, c.Dedicated = price(p.Spot), price(p.Dedicated)
	return c, true
}

// nodeSeconds of a record (0 without a cost).
func (r Record) nodeSeconds() float64 {
	if r.Cost == nil {
		return 0
	}
	return r.Cost.NodeSeconds
}
