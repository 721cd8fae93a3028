package servicebus

import "time"

// SetHeartbeatForTest shortens the idle heartbeat interval; call before Start.
func SetHeartbeatForTest(s *Server, d time.Duration) { s.heartbeat = d }
