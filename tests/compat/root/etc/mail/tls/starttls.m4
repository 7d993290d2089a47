divert(-1)dnl
#-----------------------------------------------------------------------------
# /etc/mail/tls/starttls.m4 as Debian's sendmailconfig writes it.
#-----------------------------------------------------------------------------
divert(0)dnl
dnl #
dnl # Where the certificates live
define(`confCACERT_PATH',	`/etc/ssl/certs')dnl
define(`confCACERT',		`/etc/mail/tls/sendmail-common.crt')dnl
define(`confSERVER_CERT',	`/etc/mail/tls/sendmail-server.crt')dnl
define(`confSERVER_KEY',	`/etc/mail/tls/sendmail-common.key')dnl
define(`confCLIENT_CERT',	`/etc/mail/tls/sendmail-client.crt')dnl
define(`confCLIENT_KEY',	`/etc/mail/tls/sendmail-common.key')dnl
define(`confDH_PARAMETERS',	`/etc/mail/tls/sendmail-common.prm')dnl
dnl #
dnl # These settings help protect against people verifying email addresses
dnl # at your site in order to send you email that you probably don't want
define(`confTO_STARTTLS', `2m')dnl
