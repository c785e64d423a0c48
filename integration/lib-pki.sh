# shellcheck shell=bash
# lib-pki.sh: a lab PKI made with openssl, for the certificate scenarios (71, 75).
# Sourced after lib.sh; files go to $PKI (on the scenario's tmpfs).

PKI=$LAB_WORKDIR/pki

# _ca NAME CN : a self-signed ECDSA P-256 CA with an `openssl ca` database (CRLs v2).
_ca() {
    local n=$1 db=$PKI/$1.db
    mkdir -p "$db"
    : >"$db/index.txt"
    echo 1000 >"$db/serial"
    echo 01 >"$db/crlnumber"
    cat >"$PKI/$n.cnf" <<EOF
[ ca ]
default_ca = lab
[ lab ]
dir = $db
database = $db/index.txt
new_certs_dir = $db
serial = $db/serial
crlnumber = $db/crlnumber
certificate = $PKI/$n.pem
private_key = $PKI/$n.key
default_md = sha256
default_crl_days = 30
policy = any
unique_subject = no
[ any ]
organizationName = optional
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
subjectAltName = DNS:\$ENV::LEAF_SAN
EOF
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$PKI/$n.key" -out "$PKI/$n.pem" -days 3650 -subj "/O=vpnd lab/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>>"$LAB_LOGDIR/pki.log"
}

# _leaf CA NAME SAN KEYSPEC [START END] : a leaf of CA for DNS:SAN (openssl -newkey KEYSPEC),
# valid for a year, or from START to END (YYYYMMDDHHMMSSZ).
_leaf() {
    local ca=$1 n=$2 san=$3 keyspec=$4
    local -a dates=(-days 365)
    [[ -z ${5:-} ]] || dates=(-startdate "$5" -enddate "$6")
    # shellcheck disable=SC2086 # KEYSPEC is several words
    openssl req -new -newkey $keyspec -nodes -keyout "$PKI/$n.key" -out "$PKI/$n.csr" \
        -subj "/O=vpnd lab/CN=$san" 2>>"$LAB_LOGDIR/pki.log"
    chmod 600 "$PKI/$n.key"
    LEAF_SAN=$san openssl ca -batch -notext -config "$PKI/$ca.cnf" -extensions leaf \
        "${dates[@]}" -in "$PKI/$n.csr" -out "$PKI/$n.pem" 2>>"$LAB_LOGDIR/pki.log" ||
        lab_fail "openssl ca could not sign $n (see pki.log)"
}
