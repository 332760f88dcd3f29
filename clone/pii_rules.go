package clone

// Where DHIS2 keeps personal data, per schema generation 2.38–2.44 (DOMAIN.md "Where personal
// data lives"). Tables and columns renamed between generations are all listed; a rule whose
// table or column is missing in a database does not apply to it.

// PII modes of a target (config key pii).
const (
	PIIPseudonymise = "pseudonymise"
	PIIKeep         = "keep"
)

// piiValueTypes are the free-text and identifying value types whose values are mapped to
// pseudonyms (unless bound to an option set).
var piiValueTypes = map[string]bool{
	"TEXT": true, "LONG_TEXT": true, "LETTER": true, "PHONE_NUMBER": true, "EMAIL": true,
	"USERNAME": true, "URL": true,
}

// piiDateTypes are the value types moved by a per-person offset (dates of birth and the like).
var piiDateTypes = map[string]bool{"DATE": true, "DATETIME": true, "AGE": true}

// piiSoughtTypes are value types whose every production value the scan looks for; other
// pseudonymised values are sought when the attribute is unique or name-like (piiNameLike).
var piiSoughtTypes = map[string]bool{"PHONE_NUMBER": true, "EMAIL": true, "USERNAME": true}

// piiNameLike matches attribute and data element names/codes whose values are names or IDs.
const piiNameLike = `(?i)(name|surname|given|family|national|passport|identif|\bid\b|_id\b|phone|mobile|e-?mail|kin)`

// teTables are the tracked entity tables and their id columns (renamed in 2.41).
var teIDColumns = []string{"trackedentityid", "trackedentityinstanceid"}

// eventTables hold eventdatavalues jsonb: programstageinstance (≤ 2.40), event (2.41–2.42),
// trackerevent and singleevent (2.43+).
var eventTables = []string{"programstageinstance", "event", "trackerevent", "singleevent"}

// attrValueTables hold attribute values (column pairs: value columns), keyed by
// trackedentityattributeid: current values, audit and change log.
var attrValueTables = []struct {
	table string
	cols  []string
}{
	{"trackedentityattributevalue", []string{"value"}},
	{"trackedentityattributevalueaudit", []string{"value"}},
	{"trackedentitychangelog", []string{"currentvalue", "previousvalue"}},
}

// dataValueHistoryTables hold event data value history, keyed by dataelementid.
var dataValueHistoryTables = []struct {
	table string
	cols  []string
}{
	{"trackedentitydatavalueaudit", []string{"value"}},
	{"eventchangelog", []string{"currentvalue", "previousvalue"}},
	{"trackereventchangelog", []string{"currentvalue", "previousvalue"}},
	{"singleeventchangelog", []string{"currentvalue", "previousvalue"}},
}

// usernameColumns are the text columns (any table but userinfo) into which DHIS2 copies
// usernames.
var usernameColumns = map[string]bool{
	"storedby": true, "completedby": true, "createdby": true, "updatedby": true, "modifiedby": true,
	"creator": true, "createdbyusername": true, "lastupdatebyusername": true, "lastupdatedbyusername": true,
	"accessedby": true, "lastupdatedby": true, "deleted_by": true, "user_name": true, "username": true,
}

// mentionColumns are jsonb arrays of {username, created} (interpretations and comments).
var mentionColumns = map[string]bool{"mentions": true}

// userJSONColumns are jsonb copies of the user ({uid, username, firstName, surname}).
var userJSONColumns = map[string]bool{"createdbyuserinfo": true, "lastupdatedbyuserinfo": true}

// PIIText is what free text about people becomes.
const PIIText = "[text removed: training copy]"

// freeTextColumns are replaced by PIIText.
var freeTextColumns = []struct{ table, col string }{
	{"message", "messagetext"},
	{"messageconversation", "subject"},
	{"interpretation", "interpretationtext"},
	{"interpretationcomment", "commenttext"},
	{"note", "notetext"},
	{"trackedentitycomment", "commenttext"}, // ≤ 2.40
	{"trackedentityaudit", "comment"},
	{"datavalue", "comment"},
	{"programmessage", "text"},
	{"programmessage", "subject"},
	{"outbound_sms", "message"},
	{"outbound_sms", "sender"},
	{"incomingsms", "text"},
}

// contactColumns hold phone numbers and email addresses of people: mapped to pseudonyms.
var contactColumns = []struct{ table, col string }{
	{"programmessage_phonenumbers", "phonenumber"},
	{"programmessage_emailaddresses", "email"},
	{"outbound_sms_recipients", "elt"},
	{"outbound_sms_recipients", "outbound_sms_recipients"}, // older name of the element column
	{"incomingsms", "originator"},
}

// userSoughtColumns are the userinfo columns whose values of non-kept users the scan seeks;
// first name and surname are sought together (a first name alone matches too much).
var userSoughtColumns = []string{"username", "email", "phonenumber", "whatsapp", "telegram", "openid", "ldapid"}

// genericUsernames are not sought: they are words found in any DHIS2 database's metadata.
var genericUsernames = map[string]bool{"admin": true, "system": true, "guest": true, "test": true, "root": true,
	"android": true, "anonymous": true, "user": true, "demo": true}

// scanSkipTables never hold personal data but much text that matches words (schema history,
// PostGIS reference systems).
var scanSkipTables = map[string]bool{"flyway_schema_history": true, "spatial_ref_sys": true}

// personalFileDomains are the file resource domains replaced by placeholders: tracker and
// data value files (photos, scanned documents), avatars and message attachments.
var personalFileDomains = []string{"DATA_VALUE", "USER_AVATAR", "MESSAGE_ATTACHMENT"}

// piiMarker is the comment put on trackedentityattributevalue once pseudonymised, so a copy of
// a scrubbed template is not pseudonymised twice.
const piiMarker = "dhis2-life: pseudonymised"
