// Package notify sends alerts (failure, recovery, stale backup, test) to webhooks, Slack,
// Telegram and SMTP, deduplicated per problem and delivered in the background with retries.
package notify
