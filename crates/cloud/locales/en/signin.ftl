# The sign-in pages (English, the reference catalog: every key is here; de and fr hold the same keys).
sign-in = Sign in
username-label = Email or username
next = Next
enter-password = Enter password
password-label = Password
forgot-password = Forgot my password?
cant-access = Can't access your account?
cant-access-text = Your organization has not set up self-service password reset for your account. Contact your administrator or help desk: they can reset your password, or unlock your account if it is locked.
error-code = Error code: { $code }
correlation-id = Correlation ID: { $id }
trouble-title = Sorry, but we're having trouble signing you in.
sign-in-error = Sign-in error
service-failed = The service failed; try again.
signed-in = Signed in
continue-to-app = Continue to the application
language = Language

# What a person reads when a sign-in ends with an AADSTS code.
msg-invalid-credentials = Your account or password is incorrect. If you don't remember your password, reset it now or ask your administrator.
msg-user-not-found = We couldn't find an account with that username. Check the name, or try another account.
msg-account-locked = Your account is locked because of too many sign-in attempts with a wrong password. Try again later, or contact your administrator.
msg-account-disabled = Your account has been disabled or has expired. Contact your administrator.
msg-password-change-required = Your organization doesn't allow you to update your password on this site. Please update it according to the method recommended by your organization, or ask your admin if you need help.
msg-no-password-in-cloud = This organization doesn't let you sign in with a password here yet. Contact your administrator.
msg-logon-hours = You can't sign in at this time of day. Your organization limits the hours your account can be used.
msg-directory-communication = Your organization's directory refused this sign-in. Contact your administrator (they may need to allow sign-in from the authentication agent's computer).
msg-agent-unavailable = We can't reach your organization's directory right now. Try again in a few minutes; if it keeps happening, contact your administrator.
msg-agent-timeout = Your organization's directory took too long to answer. Try again in a moment.
msg-invalid-username-for-agent = Your organization can't check this username. Make sure you typed your full work account name.
msg-agent-failure = Something went wrong while checking your password with your organization. Try again; if it keeps happening, contact your administrator.
msg-redirect-uri-mismatch = The application asked to send you to an address it hasn't registered. Contact the application's owner.
msg-unknown-client = The application you are signing in to isn't known to this organization. Contact the application's owner.
msg-tenant-not-found = This organization doesn't exist here. Check the address you used.
msg-strong-auth-failed = That code didn't work. Check the code in your authenticator app and try again (each code works once), or use one of your recovery codes.
msg-mfa-required = Your organization requires a second verification step that this application can't ask for. Sign in through your browser instead.
msg-other = Something went wrong while signing you in. Try again.
