package epmd

import "fmt"

// nodeInfo is the node description shared by ALIVE2_REQ and PORT2_RESP:
// PortNo:16 NodeType:8 Protocol:8 HighestVersion:16 LowestVersion:16
// Nlen:16 NodeName Elen:16 Extra. Its fields mirror Alive2Req exactly so the
// two convert into each other.
type nodeInfo struct {
	PortNo         uint16
	NodeType       uint8
	Protocol       uint8
	HighestVersion uint16
	LowestVersion  uint16
	Name           string
	Extra          []byte
}

func (n *nodeInfo) append(msg string, dst []byte) ([]byte, error) {
	if err := checkName(msg, n.Name); err != nil {
		return nil, err
	}
	if len(n.Extra) > MaxExtra {
		return nil, malformed(msg, fmt.Sprintf("extra of %d bytes exceeds %d", len(n.Extra), MaxExtra))
	}
	dst = appendUint16(dst, n.PortNo)
	dst = append(dst, n.NodeType, n.Protocol)
	dst = appendUint16(dst, n.HighestVersion)
	dst = appendUint16(dst, n.LowestVersion)
	dst = appendUint16(dst, uint16(len(n.Name)))
	dst = append(dst, n.Name...)
	dst = appendUint16(dst, uint16(len(n.Extra)))
	return append(dst, n.Extra...), nil
}

// decode reads a node description and requires that nothing follows it.
// Extra aliases src.
func (n *nodeInfo) decode(r *reader) error {
	n.PortNo = r.uint16("PortNo")
	n.NodeType = r.uint8("NodeType")
	n.Protocol = r.uint8("Protocol")
	n.HighestVersion = r.uint16("HighestVersion")
	n.LowestVersion = r.uint16("LowestVersion")
	nlen := int(r.uint16("Nlen"))
	if r.err == nil && nlen > MaxName {
		r.fail(fmt.Sprintf("node name of %d bytes exceeds %d", nlen, MaxName))
	}
	name := r.bytes(nlen, "NodeName")
	elen := int(r.uint16("Elen"))
	if r.err == nil && elen > MaxExtra {
		r.fail(fmt.Sprintf("extra of %d bytes exceeds %d", elen, MaxExtra))
	}
	extra := r.bytes(elen, "Extra")
	if err := r.done(); err != nil {
		return err
	}
	if err := checkName(r.msg, string(name)); err != nil {
		return err
	}
	n.Name = string(name)
	n.Extra = extra
	return nil
}
