use super::*;

fn principal(kind: InstitutionKind, duties: &[&str], auth: AuthMethod) -> Principal {
    Principal {
        user: UserId(7),
        username: "someone".into(),
        institution: InstitutionId(1),
        institution_kind: kind,
        duties: duties.iter().map(|d| Duty::parse(d).unwrap()).collect(),
        auth,
    }
}

#[test]
fn transfers_are_read_in_the_capacity_the_policy_names() {
    use AuthMethod::*;
    let citizen = principal(
        InstitutionKind::HubOperator,
        &["citizen:p-1"],
        PasswordAndTotp,
    );
    let permit = decide(&citizen, Action::ReadMydataTransfers).unwrap();
    assert_eq!(permit.duty, Some(DutyKind::Citizen));
    let unverified = principal(InstitutionKind::HubOperator, &["citizen:p-1"], Password);
    assert!(decide(&unverified, Action::ReadMydataTransfers).is_err());
    let operator = principal(
        InstitutionKind::UsingAgency,
        &["mydata_operator"],
        PasswordAndTotp,
    );
    let permit = decide(&operator, Action::ReadMydataTransfers).unwrap();
    assert_eq!(permit.duty, Some(DutyKind::MydataOperator));
    let machine = principal(InstitutionKind::UsingAgency, &["mydata_operator"], ApiToken);
    assert!(decide(&machine, Action::ReadMydataTransfers).is_ok());
    let investigator = principal(
        InstitutionKind::HealthAuthority,
        &["investigator:seoul"],
        PasswordAndTotp,
    );
    assert!(decide(&investigator, Action::ReadMydataTransfers).is_err());
}

#[test]
fn investigators_see_cases_of_their_region_or_assignment() {
    let seoul = Region::parse("seoul").unwrap();
    let daegu = Region::parse("daegu").unwrap();
    let inv = principal(
        InstitutionKind::HealthAuthority,
        &["investigator:seoul"],
        AuthMethod::PasswordAndTotp,
    );
    assert!(decide(
        &inv,
        Action::ReadCase {
            region: &seoul,
            assigned_to: &[]
        }
    )
    .is_ok());
    assert!(decide(
        &inv,
        Action::ReadCase {
            region: &daegu,
            assigned_to: &[]
        }
    )
    .is_err());
    assert!(decide(
        &inv,
        Action::ReadCase {
            region: &daegu,
            assigned_to: &[UserId(7)]
        }
    )
    .is_ok());
    let analyst = principal(
        InstitutionKind::HealthAuthority,
        &["analyst"],
        AuthMethod::Password,
    );
    assert!(decide(
        &analyst,
        Action::ReadCase {
            region: &seoul,
            assigned_to: &[UserId(7)]
        }
    )
    .is_err());
}

#[test]
fn regions_cover_their_parts() {
    let seoul = Region::parse("seoul").unwrap();
    assert!(region_covers(&seoul, &Region::parse("seoul").unwrap()));
    assert!(region_covers(
        &seoul,
        &Region::parse("seoul-gangbuk").unwrap()
    ));
    assert!(!region_covers(&seoul, &Region::parse("seoulx").unwrap()));
    assert!(!region_covers(
        &Region::parse("seoul-gangbuk").unwrap(),
        &seoul
    ));
    let inv = principal(
        InstitutionKind::HealthAuthority,
        &["investigator:seoul"],
        AuthMethod::PasswordAndTotp,
    );
    let gangbuk = Region::parse("seoul-gangbuk").unwrap();
    assert!(decide(&inv, Action::RegisterCase { region: &gangbuk }).is_ok());
    let work = |r| Action::WorkCase {
        region: r,
        assigned_to: &[],
    };
    assert!(decide(&inv, work(&gangbuk)).is_ok());
    let daegu = Region::parse("daegu").unwrap();
    assert!(decide(&inv, work(&daegu)).is_err());
    // An approver reads a case but does not work on it.
    let approver = principal(
        InstitutionKind::HealthAuthority,
        &["approver"],
        AuthMethod::PasswordAndTotp,
    );
    assert!(decide(&approver, work(&gangbuk)).is_err());
    assert!(decide(
        &approver,
        Action::ReadCase {
            region: &gangbuk,
            assigned_to: &[]
        }
    )
    .is_ok());
}

#[test]
fn data_requests_are_decided_in_ones_own_duty_with_a_second_factor() {
    let approver = principal(
        InstitutionKind::HealthAuthority,
        &["approver"],
        AuthMethod::PasswordAndTotp,
    );
    let police = principal(
        InstitutionKind::Police,
        &["police_location_officer"],
        AuthMethod::PasswordAndTotp,
    );
    let as_ = |d| Action::DecideDataRequests { as_duty: d };
    assert!(decide(&approver, as_(DutyKind::Approver)).is_ok());
    assert!(decide(&approver, as_(DutyKind::PoliceLocationOfficer)).is_err());
    assert!(decide(&police, as_(DutyKind::PoliceLocationOfficer)).is_ok());
    assert!(decide(&police, as_(DutyKind::Approver)).is_err());
    // An approver's duty at a telco is no approval.
    let elsewhere = Principal {
        institution_kind: InstitutionKind::Telco,
        ..approver.clone()
    };
    assert!(decide(&elsewhere, as_(DutyKind::Approver)).is_err());
    let token = Principal {
        auth: AuthMethod::ApiToken,
        ..approver
    };
    assert!(decide(&token, as_(DutyKind::Approver)).is_err());
}

#[test]
fn responses_are_managed_by_health_and_hub_administrators() {
    for (kind, ok) in [
        (InstitutionKind::HealthAuthority, true),
        (InstitutionKind::HubOperator, true),
        (InstitutionKind::Telco, false),
    ] {
        let admin = principal(kind, &["administrator"], AuthMethod::PasswordAndTotp);
        assert_eq!(
            decide(&admin, Action::ManageResponses).is_ok(),
            ok,
            "{kind}"
        );
    }
    let analyst = principal(
        InstitutionKind::HealthAuthority,
        &["analyst"],
        AuthMethod::Password,
    );
    assert!(decide(&analyst, Action::ListResponses).is_err());
    assert!(decide(&analyst, Action::ReadClusters).is_err());
}

#[test]
fn personal_data_needs_a_second_factor() {
    let auditor = principal(
        InstitutionKind::HubOperator,
        &["security_auditor"],
        AuthMethod::Password,
    );
    let denial = decide(&auditor, Action::SearchAudit).unwrap_err();
    assert!(denial.needs_second_factor);
    assert!(decide(&auditor, Action::EnrolSecondFactor).is_ok());
    let auditor = Principal {
        auth: AuthMethod::PasswordAndTotp,
        ..auditor
    };
    assert_eq!(
        decide(&auditor, Action::SearchAudit).unwrap().duty,
        Some(DutyKind::SecurityAuditor)
    );
    // An analyst sees no personal data: a password is enough.
    let analyst = principal(
        InstitutionKind::Ministry,
        &["analyst"],
        AuthMethod::Password,
    );
    assert!(decide(&analyst, Action::ListInstitutions).is_ok());
}

#[test]
fn a_machine_clients_token_reaches_no_personal_data() {
    let seoul = Region::parse("seoul").unwrap();
    // An account that holds a person's duty, however it came to.
    for (kind, duty) in [
        (InstitutionKind::HealthAuthority, "investigator:seoul"),
        (InstitutionKind::HubOperator, "security_auditor"),
        (InstitutionKind::HealthAuthority, "approver"),
        (InstitutionKind::HubOperator, "citizen:1001"),
    ] {
        let machine = principal(kind, &[duty], AuthMethod::ApiToken);
        for action in [
            Action::ReadCase {
                region: &seoul,
                assigned_to: &[UserId(7)],
            },
            Action::WorkCase {
                region: &seoul,
                assigned_to: &[UserId(7)],
            },
            Action::RegisterCase { region: &seoul },
            Action::Investigate,
            Action::ReadClusters,
            Action::ListResponses,
            Action::SearchAudit,
            Action::MydataCitizen,
            Action::EnrolSecondFactor,
            Action::ListInstitutions,
        ] {
            assert!(decide(&machine, action).is_err(), "{duty} {action:?}");
        }
        let person = principal(kind, &[duty], AuthMethod::PasswordAndTotp);
        assert!(decide(&person, Action::ListInstitutions).is_ok());
    }
    // An agency's system moves its own MyData transfers, and an
    // analyst's reads what holds no one's data.
    let agency = principal(
        InstitutionKind::UsingAgency,
        &["mydata_operator"],
        AuthMethod::ApiToken,
    );
    assert!(decide(&agency, Action::MydataTransfers).is_ok());
    assert!(decide(&agency, Action::ListMydataAgreements).is_ok());
    assert!(decide(&agency, Action::OpenSupportTicket).is_err());
    let analyst = principal(
        InstitutionKind::Ministry,
        &["analyst"],
        AuthMethod::ApiToken,
    );
    assert!(decide(&analyst, Action::ListInstitutions).is_ok());
    assert!(decide(&analyst, Action::ListTrainings).is_err());
}

#[test]
fn machine_clients_are_given_only_duties_a_token_may_use() {
    let root = principal(
        InstitutionKind::HubOperator,
        &["administrator"],
        AuthMethod::PasswordAndTotp,
    );
    fn grant(duties: &[Duty], machine_client: bool) -> Action<'_> {
        Action::GrantDuties {
            institution: InstitutionId(2),
            duties,
            own_account: false,
            machine_client,
        }
    }
    for duty in [
        "investigator:seoul",
        "security_auditor",
        "approver",
        "administrator",
    ] {
        let duties = [Duty::parse(duty).unwrap()];
        assert!(decide(&root, grant(&duties, true)).is_err(), "{duty}");
        assert!(decide(&root, grant(&duties, false)).is_ok(), "{duty}");
    }
    for duty in ["mydata_operator", "analyst"] {
        let duties = [Duty::parse(duty).unwrap()];
        assert!(decide(&root, grant(&duties, true)).is_ok(), "{duty}");
    }
}

#[test]
fn duties_are_granted_within_limits() {
    let admin = principal(
        InstitutionKind::HealthAuthority,
        &["administrator"],
        AuthMethod::PasswordAndTotp,
    );
    let inv = [Duty::parse("investigator:seoul").unwrap()];
    let auditor = [Duty::parse("security_auditor").unwrap()];
    let grant = |duties, own_account| Action::GrantDuties {
        institution: InstitutionId(1),
        duties,
        own_account,
        machine_client: false,
    };
    assert!(decide(&admin, grant(&inv, false)).is_ok());
    assert!(
        decide(&admin, grant(&inv, true)).is_err(),
        "not her own duties"
    );
    assert!(
        decide(&admin, grant(&auditor, false)).is_err(),
        "not a national auditor"
    );
    let root = principal(
        InstitutionKind::HubOperator,
        &["administrator"],
        AuthMethod::PasswordAndTotp,
    );
    assert!(decide(&root, grant(&auditor, false)).is_ok());
    // Not with a machine client's token.
    let token = Principal {
        auth: AuthMethod::ApiToken,
        ..root
    };
    assert!(decide(&token, grant(&inv, false)).is_err());
    assert!(decide(
        &token,
        Action::ManageApiTokens {
            institution: InstitutionId(1)
        }
    )
    .is_err());
}

#[test]
fn auditors_outside_the_hub_operator_see_their_institution_only() {
    let ministry = principal(
        InstitutionKind::Ministry,
        &["security_auditor"],
        AuthMethod::PasswordAndTotp,
    );
    assert_eq!(
        decide(&ministry, Action::SearchAudit)
            .unwrap()
            .only_institution,
        Some(InstitutionId(1))
    );
    let national = principal(
        InstitutionKind::HubOperator,
        &["security_auditor"],
        AuthMethod::PasswordAndTotp,
    );
    assert_eq!(
        decide(&national, Action::SearchAudit)
            .unwrap()
            .only_institution,
        None
    );
}

#[test]
fn administrators_manage_only_their_institution_unless_hub_operator() {
    let admin = principal(
        InstitutionKind::Telco,
        &["administrator"],
        AuthMethod::PasswordAndTotp,
    );
    assert!(decide(
        &admin,
        Action::ManageUser {
            institution: InstitutionId(1)
        }
    )
    .is_ok());
    assert!(decide(
        &admin,
        Action::ManageUser {
            institution: InstitutionId(2)
        }
    )
    .is_err());
    assert!(decide(&admin, Action::CreateInstitution).is_err());
    let root = principal(
        InstitutionKind::HubOperator,
        &["administrator"],
        AuthMethod::PasswordAndTotp,
    );
    assert!(decide(
        &root,
        Action::ManageUser {
            institution: InstitutionId(2)
        }
    )
    .is_ok());
    assert!(decide(&root, Action::CreateInstitution).is_ok());
}

#[test]
fn city_data_tenants_are_read_written_and_registered_by_whom_their_settings_name() {
    use AuthMethod::*;
    let at = |institution: i64, duties: &[&str], auth| Principal {
        institution: InstitutionId(institution),
        ..principal(InstitutionKind::LocalGovernment, duties, auth)
    };
    let (owner, writer, reader, stranger) = (1, 2, 3, 4);
    let (readers, writers) = ([InstitutionId(reader)], [InstitutionId(writer)]);
    let action = |op| Action::CityData {
        owner: InstitutionId(owner),
        readers: &readers,
        writers: &writers,
        op,
    };
    let may = |who: &Principal, op| decide(who, action(op)).is_ok();
    // A system's token is enough: city data is no one's personal data.
    let own = at(owner, &["city_data_operator"], ApiToken);
    assert!(may(&own, CityOp::Read) && may(&own, CityOp::Write) && may(&own, CityOp::Register));
    let permit = decide(&own, action(CityOp::Write)).unwrap();
    assert_eq!(permit.duty, Some(DutyKind::CityDataOperator));
    let w = at(writer, &["city_data_operator"], Password);
    assert!(may(&w, CityOp::Read) && may(&w, CityOp::Write) && !may(&w, CityOp::Register));
    let r = at(reader, &["city_data_operator"], ApiToken);
    assert!(may(&r, CityOp::Read) && !may(&r, CityOp::Write) && !may(&r, CityOp::Register));
    assert!(may(&r, CityOp::Subscribe));
    let analyst = at(reader, &["analyst"], PasswordAndTotp);
    assert_eq!(
        decide(&analyst, action(CityOp::Read)).unwrap().duty,
        Some(DutyKind::Analyst)
    );
    assert!(!may(&analyst, CityOp::Write));
    let outsider = at(stranger, &["city_data_operator"], ApiToken);
    assert!(!may(&outsider, CityOp::Read) && !may(&outsider, CityOp::Subscribe));
    // Another duty of the owner is not enough, nor is administering it.
    let admin = at(owner, &["administrator"], PasswordAndTotp);
    assert!(!may(&admin, CityOp::Read) && !may(&admin, CityOp::Register));
    let admin_by_token = at(owner, &["administrator"], ApiToken);
    assert!(!may(&admin_by_token, CityOp::Read));

    // Tenants are managed by a person with a second factor.
    let manage = Action::ManageCityTenants {
        institution: InstitutionId(owner),
    };
    assert!(decide(&admin, manage).is_ok());
    assert!(decide(&at(owner, &["administrator"], Password), manage).is_err());
    assert!(decide(&at(stranger, &["administrator"], PasswordAndTotp), manage).is_err());
    assert!(decide(&own, manage).is_err());
    assert!(decide(&own, Action::ListCityTenants).is_ok());
    assert!(decide(&analyst, Action::ListCityTenants).is_err());
    assert!(machine_client_may_hold(DutyKind::CityDataOperator));
    assert!(!DutyKind::CityDataOperator.sees_personal_data());
}
