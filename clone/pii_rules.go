package clone

// PII modes of a target (config key pii).
const (
	PIIPseudonymise = "pseudonymise"
	PIIKeep         = "keep"
)

// PIIText is what free text about people becomes.
const PIIText = "[text removed: training copy]"

// piiMarker is the comment put on trackedentityattributevalue once pseudonymised, so a copy of
// a scrubbed template is not pseudonymised twice.
const piiMarker = "dhis2-life: pseudonymised"
