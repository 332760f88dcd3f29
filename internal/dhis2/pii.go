package dhis2

// Where DHIS2 keeps personal data, per schema generation 2.38–2.44 (DOMAIN.md "Where personal
// data lives"). Tables and columns renamed between generations are all listed; a rule whose
// table or column is missing in a database does not apply to it.

// PIIValueTypes are the free-text and identifying value types whose values are mapped to
// pseudonyms (unless bound to an option set).
var PIIValueTypes = map[string]bool{
	"TEXT": true, "LONG_TEXT": true, "LETTER": true, "PHONE_NUMBER": true, "EMAIL": true,
	"USERNAME": true, "URL": true,
}

// PIIDateTypes are the value types moved by a per-person offset (dates of birth and the like).
var PIIDateTypes = map[string]bool{"DATE": true, "DATETIME": true, "AGE": true}

// PIISoughtTypes are value types whose every production value the scan looks for; other
// pseudonymised values are sought when the attribute is unique or name-like (PIINameLike).
var PIISoughtTypes = map[string]bool{"PHONE_NUMBER": true, "EMAIL": true, "USERNAME": true}

// PIINameLike matches attribute and data element names/codes whose values are names or IDs.
const PIINameLike = `(?i)(name|surname|given|family|national|passport|identif|\bid\b|_id\b|phone|mobile|e-?mail|kin)`

// TEIDColumns are the id columns of tracked entities (renamed in 2.41).
var TEIDColumns = []string{"trackedentityid", "trackedentityinstanceid"}

// EventTables hold eventdatavalues jsonb: programstageinstance (≤ 2.40), event (2.41–2.42),
// trackerevent and singleevent (2.43+).
var EventTables = []string{"programstageinstance", "event", "trackerevent", "singleevent"}

// AttrValueTables hold attribute values (column pairs: value columns), keyed by
// trackedentityattributeid: current values, audit and change log.
var AttrValueTables = []PIIColumns{
	{"trackedentityattributevalue", []string{"value"}},
	{"trackedentityattributevalueaudit", []string{"value"}},
	{"trackedentitychangelog", []string{"currentvalue", "previousvalue"}},
}

// DataValueHistoryTables hold event data value history, keyed by dataelementid.
var DataValueHistoryTables = []PIIColumns{
	{"trackedentitydatavalueaudit", []string{"value"}},
	{"eventchangelog", []string{"currentvalue", "previousvalue"}},
	{"trackereventchangelog", []string{"currentvalue", "previousvalue"}},
	{"singleeventchangelog", []string{"currentvalue", "previousvalue"}},
}

// UsernameColumns are the text columns (any table but userinfo) into which DHIS2 copies
// usernames.
var UsernameColumns = map[string]bool{
	"storedby": true, "completedby": true, "createdby": true, "updatedby": true, "modifiedby": true,
	"creator": true, "createdbyusername": true, "lastupdatebyusername": true, "lastupdatedbyusername": true,
	"accessedby": true, "lastupdatedby": true, "deleted_by": true, "user_name": true, "username": true,
}

// MentionColumns are jsonb arrays of {username, created} (interpretations and comments).
var MentionColumns = map[string]bool{"mentions": true}

// UserJSONColumns are jsonb copies of the user ({uid, username, firstName, surname}).
var UserJSONColumns = map[string]bool{"createdbyuserinfo": true, "lastupdatedbyuserinfo": true}

// FreeTextColumns are replaced by PIIText.
var FreeTextColumns = []PIIColumn{
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

// ContactColumns hold phone numbers and email addresses of people: mapped to pseudonyms.
var ContactColumns = []PIIColumn{
	{"programmessage_phonenumbers", "phonenumber"},
	{"programmessage_emailaddresses", "email"},
	{"outbound_sms_recipients", "elt"},
	{"outbound_sms_recipients", "outbound_sms_recipients"}, // older name of the element column
	{"incomingsms", "originator"},
}

// UserSoughtColumns are the userinfo columns whose values of non-kept users the scan seeks;
// first name and surname are sought together (a first name alone matches too much).
var UserSoughtColumns = []string{"username", "email", "phonenumber", "whatsapp", "telegram", "openid", "ldapid"}

// GenericUsernames are not sought: they are words found in any DHIS2 database's metadata.
var GenericUsernames = map[string]bool{"admin": true, "system": true, "guest": true, "test": true, "root": true,
	"android": true, "anonymous": true, "user": true, "demo": true}

// ScanSkipTables never hold personal data but much text that matches words (schema history,
// PostGIS reference systems).
var ScanSkipTables = map[string]bool{"flyway_schema_history": true, "spatial_ref_sys": true}

// PersonalFileDomains are the file resource domains replaced by placeholders: tracker and
// data value files (photos, scanned documents), avatars and message attachments.
var PersonalFileDomains = []string{"DATA_VALUE", "USER_AVATAR", "MESSAGE_ATTACHMENT"}

// PIIColumns are value columns of a table.
type PIIColumns struct {
	Table string
	Cols  []string
}

// PIIColumn is one column of a table.
type PIIColumn struct{ Table, Col string }
