package batch

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/batch/odata"
)

// The account operations clients call before they create a pool: the
// images a pool may use, and the node counts per pool.

type imageReference struct {
	Publisher               string `json:"publisher,omitempty"`
	Offer                   string `json:"offer,omitempty"`
	SKU                     string `json:"sku,omitempty"`
	Version                 string `json:"version,omitempty"`
	VirtualMachineImageID   string `json:"virtualMachineImageId,omitempty"`
	ExactVersion            string `json:"exactVersion,omitempty"`
	SharedGalleryImageID    string `json:"sharedGalleryImageId,omitempty"`
	CommunityGalleryImageID string `json:"communityGalleryImageId,omitempty"`
}

type supportedImage struct {
	NodeAgentSKUID        string         `json:"nodeAgentSKUId"`
	ImageReference        imageReference `json:"imageReference"`
	OSType                string         `json:"osType"`
	Capabilities          []string       `json:"capabilities,omitempty"`
	BatchSupportEndOfLife *time.Time     `json:"batchSupportEndOfLife,omitempty"`
	VerificationType      string         `json:"verificationType"`
}

// supportedImages are the images and node agent SKUs a pool may use here:
// the Canonical Ubuntu images of the real list that run plain processes
// (docs/batch-standin.md, "Supported images"). Container images
// (microsoft-dsvm) are left out: the stand-in runs no containers.
var supportedImages = func() []supportedImage {
	eol2204 := time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	img := func(offer, sku, agent string, eol *time.Time, caps ...string) supportedImage {
		return supportedImage{NodeAgentSKUID: agent, OSType: "linux", VerificationType: "verified",
			ImageReference: imageReference{Publisher: "canonical", Offer: offer, SKU: sku, Version: "latest"},
			Capabilities:   caps, BatchSupportEndOfLife: eol}
	}
	return []supportedImage{
		img("0001-com-ubuntu-server-jammy", "22_04-lts", "batch.node.ubuntu 22.04", &eol2204),
		img("0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "batch.node.ubuntu 22.04", &eol2204, "Generation2VMImage"),
		img("ubuntu-24_04-lts", "server", "batch.node.ubuntu 24.04", nil, "Generation2VMImage"),
		img("ubuntu-24_04-lts", "server-gen1", "batch.node.ubuntu 24.04", nil),
	}
}()

var imageSchema = odata.Schema{
	"nodeAgentSKUId":   {Kind: odata.String, EqOnly: true},
	"osType":           {Kind: odata.String, EqOnly: true},
	"verificationType": {Kind: odata.String, EqOnly: true},
}

func imageGetter(im *supportedImage) odata.Getter {
	return func(name string) (any, bool) {
		switch name {
		case "nodeAgentSKUId":
			return im.NodeAgentSKUID, true
		case "osType":
			return im.OSType, true
		case "verificationType":
			return im.VerificationType, true
		}
		return nil, false
	}
}

func (s *Server) listSupportedImages(c *reqCtx) {
	listByKey(s, c, "Microsoft.Azure.Batch.Protocol.Entities.Container.supportedImages", imageSchema, supportedImage{},
		func() ([]*supportedImage, *apiError) {
			out := make([]*supportedImage, len(supportedImages))
			for i := range supportedImages {
				out[i] = &supportedImages[i]
			}
			return out, nil
		},
		func(im *supportedImage) keyed {
			r := im.ImageReference
			return keyed{key: lower(im.NodeAgentSKUID + "/" + r.Publisher + "/" + r.Offer + "/" + r.SKU), get: imageGetter(im), v: im}
		})
}

// vmConfiguration is the part of virtualMachineConfiguration the stand-in
// checks; the whole object is kept and returned as sent.
type vmConfiguration struct {
	ImageReference         *imageReference `json:"imageReference"`
	NodeAgentSKUID         string          `json:"nodeAgentSKUId"`
	ContainerConfiguration json.RawMessage `json:"containerConfiguration"`
}

// validateVMConfiguration accepts a marketplace image only with its node
// agent SKU from supportedImages, and a custom image with one of those
// agents.
func validateVMConfiguration(raw json.RawMessage) *apiError {
	if isNullRaw(raw) {
		return nil
	}
	var vm vmConfiguration
	if err := json.Unmarshal(raw, &vm); err != nil {
		return errBadProperty("virtualMachineConfiguration", "", err.Error())
	}
	const prop = "virtualMachineConfiguration"
	if vm.ImageReference == nil {
		return errMissingProperty(prop + ".imageReference")
	}
	if vm.NodeAgentSKUID == "" {
		return errMissingProperty(prop + ".nodeAgentSKUId")
	}
	if !isNullRaw(vm.ContainerConfiguration) {
		return errUnsupported(prop+".containerConfiguration", "containers are not modelled: tasks run as local processes")
	}
	r := vm.ImageReference
	custom := r.VirtualMachineImageID != "" || r.SharedGalleryImageID != "" || r.CommunityGalleryImageID != ""
	var agents []string
	for _, im := range supportedImages {
		if !strings.EqualFold(im.NodeAgentSKUID, vm.NodeAgentSKUID) {
			if !containsFold(agents, im.NodeAgentSKUID) {
				agents = append(agents, im.NodeAgentSKUID)
			}
			continue
		}
		ir := im.ImageReference
		if custom || strings.EqualFold(ir.Publisher, r.Publisher) && strings.EqualFold(ir.Offer, r.Offer) && strings.EqualFold(ir.SKU, r.SKU) {
			return nil
		}
	}
	if custom {
		return errBadProperty(prop+".nodeAgentSKUId", vm.NodeAgentSKUID,
			"the node agent SKU is not one of "+strings.Join(agents, ", ")+" (GET /supportedimages)")
	}
	return errBadProperty(prop+".imageReference", r.Publisher+"/"+r.Offer+"/"+r.SKU+" with "+vm.NodeAgentSKUID,
		"the image and node agent SKU are not a pair GET /supportedimages lists")
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// nodeCounts counts a pool's dedicated or low-priority nodes by state.
type nodeCounts struct {
	Creating            int32 `json:"creating"`
	Idle                int32 `json:"idle"`
	Offline             int32 `json:"offline"`
	Preempted           int32 `json:"preempted"`
	Rebooting           int32 `json:"rebooting"`
	Reimaging           int32 `json:"reimaging"`
	Running             int32 `json:"running"`
	Starting            int32 `json:"starting"`
	StartTaskFailed     int32 `json:"startTaskFailed"`
	LeavingPool         int32 `json:"leavingPool"`
	Unknown             int32 `json:"unknown"`
	Unusable            int32 `json:"unusable"`
	WaitingForStartTask int32 `json:"waitingForStartTask"`
	Deallocated         int32 `json:"deallocated"`
	Deallocating        int32 `json:"deallocating"`
	UpgradingOS         int32 `json:"upgradingOS"`
	Total               int32 `json:"total"`
}

func (n *nodeCounts) add(state string) {
	n.Total++
	switch state {
	case "idle":
		n.Idle++
	case stateRunning:
		n.Running++
	case "waitingforstarttask":
		n.WaitingForStartTask++
	case "starttaskfailed":
		n.StartTaskFailed++
	case "leavingpool":
		n.LeavingPool++
	default:
		n.Unknown++
	}
}

type poolNodeCounts struct {
	PoolID      string      `json:"poolId"`
	Dedicated   *nodeCounts `json:"dedicated,omitempty"`
	LowPriority *nodeCounts `json:"lowPriority,omitempty"`
}

var nodeCountsSchema = odata.Schema{"poolId": {Kind: odata.String, StartsWith: true}}

func (s *Server) listPoolNodeCounts(c *reqCtx) {
	listByKey(s, c, "poolnodecounts", nodeCountsSchema, poolNodeCounts{},
		func() ([]*poolEntry, *apiError) { return s.poolList, nil },
		func(p *poolEntry) keyed {
			pc := &poolNodeCounts{PoolID: p.w.ID, Dedicated: &nodeCounts{}, LowPriority: &nodeCounts{}}
			for _, n := range p.nodes {
				if n.w.IsDedicated {
					pc.Dedicated.add(n.w.State)
				} else {
					pc.LowPriority.add(n.w.State)
				}
			}
			return keyed{key: p.key, get: func(name string) (any, bool) { return pc.PoolID, name == "poolId" }, v: pc}
		})
}
