package readiness

// checks maps each control of the catalog to the function that evaluates
// it. Adding a control: append it to catalog (readiness.go), write its
// function in the file of its group (controls_*.go), register it here, and
// add its ID to config.ReadinessControlIDs; see docs/readiness.md.
var checks = map[string]checkFunc{
	CtlBackups:           checkBackups,
	CtlRestoreDrill:      checkRestoreDrill,
	CtlDrillRotation:     checkDrillRotation,
	CtlIntegrity:         checkIntegrity,
	CtlDataChanges:       checkDataChanges,
	CtlStandingPrivilege: checkStandingPrivilege,
	CtlGrants:            checkGrants,
	CtlBreakGlass:        checkBreakGlass,
	CtlEmergencyKit:      checkEmergencyKit,
	CtlProbesSLO:         checkProbesSLO,
	CtlAlertChannels:     checkAlertChannels,
	CtlAuditLog:          checkAuditLog,
	CtlContacts:          checkContacts,
	CtlApprovalPolicy:    checkApprovalPolicy,
}
